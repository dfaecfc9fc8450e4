"""What ``make cluster-up`` runs besides Kubernetes: Postgres and the stepstone operator, with
the CRDs installed and the database Secret runner pods read in the ``default`` namespace.

After it, ``KUBECONFIG=.cluster/kubeconfig kubectl apply -f examples/`` runs the examples, and
``stepstone --database-url "$(cat .cluster/database-url)" runs`` lists their runs.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.substrate.handle import ClusterHandle
from tests.substrate.operator import OperatorProcess
from tests.substrate.postgres import LocalPostgres, free_port
from tests.substrate.services import ServiceSpec
from tests.substrate.tools import REPO
from tests.substrate.waiting import wait_for

#: Images the test kubelet simulates with folders of this checkout (it pulls nothing).
IMAGE_PATHS = {
    "stepstone:dev": REPO,
    "stepstone/examples:dev": REPO / "examples",
}


def kubelet_image_args() -> tuple[str, ...]:
    return tuple(f"--image-path={image}={folder}" for image, folder in IMAGE_PATHS.items())


def database_url_file(state_dir: Path) -> Path:
    return state_dir / "database-url"


def postgres_service(info: object) -> ServiceSpec:
    state_dir = Path(info.state_dir)  # type: ignore[attr-defined]
    server = LocalPostgres(root=state_dir / "postgres", port=free_port())
    server.init()
    database_url_file(state_dir).write_text(server.url + "\n")

    def ready() -> bool:
        try:
            with psycopg.connect(server.url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    return ServiceSpec(
        name="postgres", argv=tuple(server.server_argv()), ready=ready, ready_timeout=60.0
    )


def operator_service(info: object) -> ServiceSpec:
    state_dir = Path(info.state_dir)  # type: ignore[attr-defined]
    kubeconfig = str(info.kubeconfig)  # type: ignore[attr-defined]
    kubectl = str(Path(info.bin_dir) / "kubectl")  # type: ignore[attr-defined]
    url = database_url_file(state_dir).read_text().strip()
    env = {"KUBECONFIG": kubeconfig}
    subprocess.run(
        [kubectl, "apply", "-f", str(REPO / "crds")], env=env, check=True, capture_output=True
    )
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: stepstone-database, namespace: default}\n"
        f"data: {{url: {base64.b64encode(url.encode()).decode()}}}\n"
    )
    subprocess.run(
        [kubectl, "apply", "-f", "-"],
        input=secret.encode(),
        env=env,
        check=True,
        capture_output=True,
    )
    metrics = free_port()

    def ready() -> bool:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                row = conn.execute("SELECT to_regclass('stepstone.runs')").fetchone()
        except psycopg.OperationalError:
            return False
        if row is None or row[0] is None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=2):
                return True
        except OSError:
            return False

    return ServiceSpec(
        name="stepstone-operator",
        argv=(
            sys.executable,
            "-m",
            "stepstone_operator",
            "--database-url",
            url,
            "--migrate",
            "--metrics-port",
            str(metrics),
            "--liveness-port",
            "0",
            "--log-format",
            "json",
        ),
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        ready=ready,
        ready_timeout=60.0,
    )


@dataclass
class PrivateStepstone:
    """A private cluster, its own Postgres (with a database holding the side-effect counters)
    and an operator, for the chaos suite and the cluster benchmarks."""

    cluster: ClusterHandle
    postgres: LocalPostgres
    database_url: str
    operator: OperatorProcess

    def namespace(self, name: str) -> str:
        """A namespace with the database Secret runner pods read."""
        self.cluster.kubectl("create", "namespace", name)
        wait_for(
            lambda: self.cluster.get("serviceaccount", "default", name),
            30,
            description=f"{name}'s default ServiceAccount",
        )
        self.cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "stepstone-database"},
                "data": {"url": base64.b64encode(self.database_url.encode()).decode()},
            },
            namespace=name,
        )
        return name


@contextmanager
def private_stepstone(
    database: str, *, kubelet_args: tuple[str, ...] | None = None
) -> Iterator[PrivateStepstone]:
    from tests.substrate.fixtures import session_cluster, session_scratch
    from tests.workflows import effects

    with ExitStack() as stack:
        postgres = LocalPostgres.create()
        postgres.start()
        stack.callback(postgres.destroy)
        cluster = stack.enter_context(session_cluster(session_scratch(), kubelet_args=kubelet_args))
        url = postgres.url_for(database)
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {database}")
        effects.install(url)
        cluster.kubectl("apply", "-f", str(REPO / "crds"))
        operator = OperatorProcess(
            kubeconfig=Path(cluster.kubeconfig),
            database_url=url,
            log=Path(cluster.state_dir) / "operator.log",
            extra_args=("--migrate",),
        )
        operator.start()
        stack.callback(operator.stop)
        yield PrivateStepstone(cluster, postgres, url, operator)
