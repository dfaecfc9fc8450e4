"""`helm lint` and `helm template` of charts/stepstone: what each mode renders, least-privilege
RBAC, restricted pod security, hooks, the values schema, the NOTES. No cluster needed, only the
helm binary the test substrate builds (skips, saying so, without it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stepstone_operator.pods import RUNNER_UID
from tests.substrate.tools import REPO, ToolsMissingError, find_tools

CHART = REPO / "charts" / "stepstone"
Doc = dict[str, Any]
#: Everything the operator may do, as docs/operating.md's table says.
NAMESPACED_RULES = {
    ("stepstone.io", "workflowruns"): {"get", "list", "watch", "create", "patch", "delete"},
    ("stepstone.io", "workflowruns/status"): {"get", "patch"},
    ("stepstone.io", "workflowruns/finalizers"): {"update"},
    ("stepstone.io", "workflows"): {"get", "list", "watch"},
    ("stepstone.io", "workflowevents"): {"get", "list", "watch", "patch"},
    ("stepstone.io", "workflowevents/status"): {"get", "patch"},
    ("", "pods"): {"get", "list", "watch", "create", "delete"},
    ("", "pods/log"): {"get"},
    ("", "events"): {"create"},
}
CLUSTER_ONLY_RULES = {
    ("", "nodes"): {"get", "list", "watch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
}


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        return find_tools() / "helm"
    except ToolsMissingError as exc:
        pytest.skip(f"no helm binary: {exc}")


def _helm(helm: Path, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args, str(chart)], capture_output=True, text=True, timeout=60, check=False
    )


def render(
    helm: Path, *sets: str, release: str = "stepstone", namespace: str = "stepstone"
) -> list[Doc]:
    argv = ["template", release, "-n", namespace]
    for item in sets:
        argv += ["--set", item]
    result = subprocess.run(
        [str(helm), *argv, str(CHART)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in of_kind(docs, kind)])
    return found[0]


def rules(role: Doc) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def pod_specs(docs: list[Doc]) -> dict[str, Doc]:
    specs = {}
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            specs[f"{d['kind']}/{d['metadata']['name']}"] = d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            specs[f"Pod/{d['metadata']['name']}"] = d["spec"]
    return specs


@pytest.mark.parametrize(
    "sets",
    [
        (),
        ("postgresql.enabled=false",),
        ("watchNamespaces={a,b}", "postgresql.enabled=false"),
        ("crds.install=false", "rbac.create=false", "metrics.serviceMonitor.enabled=true"),
    ],
    ids=["bundled", "external", "namespaced", "minimal"],
)
def test_lint_is_clean(helm: Path, sets: tuple[str, ...]) -> None:
    result = _helm(helm, "lint", "--strict", *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_every_pod_is_restricted_and_non_root(helm: Path) -> None:
    for sets in ((), ("postgresql.enabled=false",)):
        for name, spec in pod_specs(render(helm, *sets)).items():
            pod_sc = spec["securityContext"]
            assert pod_sc["runAsNonRoot"] is True, name
            assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for container in spec.get("initContainers", []) + spec["containers"]:
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, name
                assert sc["capabilities"] == {"drop": ["ALL"]}, name
                assert sc["readOnlyRootFilesystem"] is True, name
                assert "resources" in container, name
            if not name.startswith("StatefulSet/"):
                assert pod_sc["runAsUser"] == RUNNER_UID, name  # the image's user


def test_the_operator_deployment(helm: Path) -> None:
    deployment = one(render(helm), "Deployment", "stepstone")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "stepstone"
    [container] = spec["containers"]
    assert container["command"] == ["python", "-m", "stepstone_operator"]
    args = container["args"]
    assert "--runner-service-account=stepstone-runner" in args
    assert not [a for a in args if a.startswith(("--namespace", "--migrate", "--no-nodes"))]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["resources"]["limits"]["memory"]
    [env] = container["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "stepstone-database", "key": "url"}


def test_cluster_wide_rbac_is_exactly_the_documented_rules(helm: Path) -> None:
    docs = render(helm, "postgresql.enabled=false")
    role = one(docs, "ClusterRole", "stepstone-operator")
    assert rules(role) == {**NAMESPACED_RULES, **CLUSTER_ONLY_RULES}
    binding = one(docs, "ClusterRoleBinding", "stepstone-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "stepstone", "namespace": "stepstone"}
    ]
    assert not [r for r in of_kind(docs, "Role") if "operator" in r["metadata"]["name"]]


def test_namespaced_mode_grants_nothing_cluster_scoped(helm: Path) -> None:
    docs = render(helm, "watchNamespaces={team-a,team-b}", "postgresql.enabled=false")
    assert not of_kind(docs, "ClusterRole") and not of_kind(docs, "ClusterRoleBinding")
    operator_roles = [
        r for r in of_kind(docs, "Role") if r["metadata"]["name"].endswith("-operator")
    ]
    assert {r["metadata"]["namespace"] for r in operator_roles} == {"team-a", "team-b"}
    assert all(rules(r) == NAMESPACED_RULES for r in operator_roles)
    args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {"--namespace=team-a", "--namespace=team-b", "--no-nodes"} <= set(args)
    runners = [
        s for s in of_kind(docs, "ServiceAccount") if s["metadata"]["name"] == "stepstone-runner"
    ]
    assert {s["metadata"]["namespace"] for s in runners} == {"team-a", "team-b"}
    assert all(s["automountServiceAccountToken"] is False for s in runners)
    # helm test runs where the operator is: the first watched namespace.
    assert one(docs, "WorkflowRun")["metadata"]["namespace"] == "team-a"


def test_no_rule_reaches_secrets(helm: Path) -> None:
    for sets in ((), ("watchNamespaces={a}",)):
        for role in of_kind(render(helm, *sets), "Role") + of_kind(
            render(helm, *sets), "ClusterRole"
        ):
            assert not [k for k in rules(role) if k[1] in ("secrets", "*")], role["metadata"]
            assert not [v for vs in rules(role).values() for v in vs if v == "*"]


def test_crds_are_behind_a_value_and_kept_on_uninstall(helm: Path) -> None:
    crds = of_kind(render(helm), "CustomResourceDefinition")
    generated_files = sorted((REPO / "crds").glob("*.yaml"))
    assert {c["metadata"]["name"] for c in crds} == {
        yaml.safe_load(f.read_text())["metadata"]["name"] for f in generated_files
    }
    assert {"workflows.stepstone.io", "workflowruns.stepstone.io"} <= {
        c["metadata"]["name"] for c in crds
    }
    for crd in crds:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        generated = yaml.safe_load(
            (REPO / "crds" / f"{crd['spec']['names']['plural']}.yaml").read_text()
        )
        assert crd["spec"] == generated["spec"]  # the same CRDs as `kubectl apply -f crds/`
    assert not of_kind(render(helm, "crds.install=false"), "CustomResourceDefinition")


def test_bundled_postgres_mode(helm: Path) -> None:
    docs = render(helm)
    statefulset = one(docs, "StatefulSet", "stepstone-postgresql")
    assert statefulset["spec"]["replicas"] == 1
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "8Gi"
    }
    service = one(docs, "Service", "stepstone-postgresql")
    assert service["spec"]["clusterIP"] == "None"
    secret = one(docs, "Secret", "stepstone-database")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    import base64

    url = base64.b64decode(secret["data"]["url"]).decode()
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert (
        url
        == f"postgresql://stepstone:{password}@stepstone-postgresql.stepstone.svc:5432/stepstone"
    )
    assert len(password) == 32
    # The bundled database exists only once the release's resources do: the first migration is
    # the operator's init container's; upgrades migrate in the pre-upgrade hook.
    deployment = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert deployment["initContainers"][0]["command"] == [
        "python",
        "-m",
        "stepstone",
        "db",
        "migrate",
    ]
    job = one(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    without_volume = one(render(helm, "postgresql.persistence.enabled=false"), "StatefulSet")
    assert "volumeClaimTemplates" not in without_volume["spec"]
    namespaced = render(helm, "watchNamespaces={stepstone,team-a}")
    assert {s["metadata"]["namespace"] for s in of_kind(namespaced, "Secret")} == {
        "stepstone",
        "team-a",
    }


def test_external_database_mode(helm: Path) -> None:
    docs = render(helm, "postgresql.enabled=false")
    assert not of_kind(docs, "StatefulSet") and not of_kind(docs, "Secret")
    assert "initContainers" not in one(docs, "Deployment")["spec"]["template"]["spec"]
    job = one(docs, "Job", "stepstone-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    spec = job["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["containers"][0]["command"] == ["python", "-m", "stepstone", "db", "migrate"]


def test_helm_test_hooks(helm: Path) -> None:
    docs = render(helm, "test.image.tag=t1")
    hooks = [
        d for d in docs if (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
    ]
    assert sorted(d["kind"] for d in hooks) == [
        "Pod", "Role", "RoleBinding", "ServiceAccount", "Workflow", "WorkflowRun",
    ]  # fmt: skip
    workflow = one(hooks, "Workflow")
    assert workflow["spec"]["image"] == "stepstone:t1"
    assert workflow["spec"]["entrypoint"] == "stepstone.testing:hello"
    pod = one(hooks, "Pod")
    assert (CHART / "files" / "helm-test.py").read_text() == pod["spec"]["containers"][0][
        "command"
    ][2]
    role = one(hooks, "Role")
    assert rules(role) == {("stepstone.io", "workflowruns"): {"get"}}
    weights = {d["kind"]: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for d in hooks}
    assert weights["ServiceAccount"] < weights["Workflow"] < weights["WorkflowRun"] < weights["Pod"]


def test_long_release_names_stay_within_kubernetes_limits(helm: Path) -> None:
    release = "a-release-name-that-is-quite-long-indeed-x"  # 42 characters, helm's limit is 53
    docs = render(helm, release=release)
    for d in docs:
        assert len(d["metadata"]["name"]) <= 63, d["metadata"]["name"]
    assert len(one(docs, "WorkflowRun")["metadata"]["name"]) <= 55  # the CRD's own limit


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (("operatr.workers=2",), "additional properties 'operatr' not allowed"),
        (("operator.logFormat=xml",), "logFormat"),
        (("watchNamespaces={Not_A_Namespace}",), "watchNamespaces"),
        (("postgresql.enabled=maybe",), "enabled"),
        (("operator.metricsPort=0",), "metricsPort"),
    ],
)
def test_the_values_schema_rejects_mistakes(
    helm: Path, sets: tuple[str, ...], complaint: str
) -> None:
    argv = ["template", "x", *[a for s in sets for a in ("--set", s)]]
    result = _helm(helm, *argv)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def _notes(helm: Path, tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` would print it. `helm template` skips NOTES and parses what
    it renders as YAML, so a copy of the chart renders NOTES.txt through `tpl` into a
    ConfigMap."""
    chart = tmp_path / "stepstone"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "files" / "notes.tpl")
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '{{ tpl (.Files.Get "files/notes.tpl") . | indent 4 }}\n'
    )
    argv = ["template", "stepstone", "-n", "stepstone", "--show-only", "templates/notes.yaml"]
    result = _helm(helm, *argv, *[a for s in sets for a in ("--set", s)], chart=chart)
    assert result.returncode == 0, result.stderr
    notes: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return notes


def test_notes_tell_the_user_what_to_do_next(helm: Path, tmp_path: Path) -> None:
    bundled = _notes(helm, tmp_path / "1")
    assert "Mode: cluster-wide" in bundled and "bundled Postgres" in bundled
    assert "kubectl -n stepstone rollout status deployment/stepstone" in bundled
    assert "helm test stepstone -n stepstone" in bundled
    namespaced = _notes(
        helm, tmp_path / "2", "watchNamespaces={team-a}", "postgresql.enabled=false"
    )
    assert "Mode: namespaced. The operator serves only: team-a." in namespaced
    assert 'Each needs the database Secret "stepstone-database"' in namespaced
    assert "kubectl -n team-a apply -f examples/" in namespaced
