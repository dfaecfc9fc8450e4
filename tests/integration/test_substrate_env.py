"""What a container sees: env from Secrets/ConfigMaps/the downward API, volumes, its token."""

from __future__ import annotations

import json

import pytest

from tests.integration import manifests as m
from tests.substrate import wait_for
from tests.substrate.handle import ClusterHandle

pytestmark = pytest.mark.cluster

PRINT_ENV = """
import json, os
keys = ["FROM_SECRET", "FROM_CONFIG", "POD_NAME", "POD_NAMESPACE", "NODE_NAME", "POD_IP",
        "APP_LABEL", "MEM_LIMIT_MI", "PLAIN", "EXPANDED", "CFG_color", "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT"]
print(json.dumps({k: os.environ.get(k) for k in keys}))
"""


def _key_ref(kind: str, name: str, key: str) -> m.Json:
    return {kind: {"name": name, "key": key}}


def _field(path: str) -> m.Json:
    return {"fieldRef": {"fieldPath": path}}


def _finished(cluster: ClusterHandle, name: str, namespace: str) -> m.Json:
    pod: m.Json = wait_for(
        lambda: (
            (p := cluster.get("pod", name, namespace))
            and p["status"].get("phase") in ("Succeeded", "Failed")
            and p
        ),
        timeout=30,
        description=f"pod {name} finished",
    )
    return pod


def test_env_from_secret_configmap_and_downward_api(cluster: ClusterHandle, namespace: str) -> None:
    cluster.kubectl(
        "create", "secret", "generic", "creds", "-n", namespace, "--from-literal=password=s3cret"
    )
    cluster.kubectl(
        "create", "configmap", "settings", "-n", namespace,
        "--from-literal=level=debug", "--from-literal=color=blue",
    )  # fmt: skip
    container = m.python_container(
        PRINT_ENV,
        resources={"limits": {"memory": "256Mi"}},
        env=[
            {"name": "FROM_SECRET", "valueFrom": _key_ref("secretKeyRef", "creds", "password")},
            {"name": "FROM_CONFIG", "valueFrom": _key_ref("configMapKeyRef", "settings", "level")},
            {"name": "POD_NAME", "valueFrom": _field("metadata.name")},
            {"name": "POD_NAMESPACE", "valueFrom": _field("metadata.namespace")},
            {"name": "NODE_NAME", "valueFrom": _field("spec.nodeName")},
            {"name": "POD_IP", "valueFrom": _field("status.podIP")},
            {"name": "APP_LABEL", "valueFrom": _field("metadata.labels['app']")},
            {
                "name": "MEM_LIMIT_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "PLAIN", "value": "plain value"},
            {"name": "EXPANDED", "value": "$(POD_NAME)/$(PLAIN)/$$(NOT)"},
        ],
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
    )
    cluster.apply(m.pod("envpod", container), namespace=namespace)
    pod = _finished(cluster, "envpod", namespace)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    env = json.loads(cluster.kubectl("logs", "envpod", "-n", namespace).stdout.strip())
    assert env["FROM_SECRET"] == "s3cret"
    assert env["FROM_CONFIG"] == "debug"
    assert env["POD_NAME"] == "envpod"
    assert env["POD_NAMESPACE"] == namespace
    assert env["NODE_NAME"] == pod["spec"]["nodeName"]
    assert env["APP_LABEL"] == "envpod"
    assert env["MEM_LIMIT_MI"] == "256"
    assert env["PLAIN"] == "plain value"
    assert env["EXPANDED"] == "envpod/plain value/$(NOT)"
    assert env["CFG_color"] == "blue"
    if cluster.kubelet is not None:  # the substrate's own promises
        assert env["POD_IP"] == "127.0.0.1"
        assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
        assert env["KUBERNETES_SERVICE_PORT"] == cluster.api_url.rsplit(":", 1)[1]


def test_missing_secret_holds_the_container_until_it_exists(
    cluster: ClusterHandle, namespace: str
) -> None:
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "later", "key": "x"}}}]
    container = m.python_container("import os; print(os.environ['X'])", env=env)
    cluster.apply(m.pod("waits", container), namespace=namespace)

    def waiting_reason() -> str | None:
        waiting = m.container_state(cluster.get("pod", "waits", namespace)).get("waiting")
        return waiting.get("reason") if waiting else None

    wait_for(
        lambda: waiting_reason() == "CreateContainerConfigError",
        timeout=30,
        description="CreateContainerConfigError",
    )
    cluster.kubectl("create", "secret", "generic", "later", "-n", namespace, "--from-literal=x=now")
    assert _finished(cluster, "waits", namespace)["status"]["phase"] == "Succeeded"
    assert cluster.kubectl("logs", "waits", "-n", namespace).stdout.strip() == "now"


def test_volumes_and_service_account_token(cluster: ClusterHandle, namespace: str) -> None:
    cluster.kubectl(
        "create", "secret", "generic", "files", "-n", namespace, "--from-literal=key=value"
    )
    code = """
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
request = urllib.request.Request(
    f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
    data=b'{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}',
    headers={"Authorization": "Bearer " + open(sa + "/token").read(),
             "Content-Type": "application/json"},
    method="POST",
)
context = ssl.create_default_context(cafile=sa + "/ca.crt")
review = json.load(urllib.request.urlopen(request, context=context))
try:  # what the operator does (kubernetes is in the substrate's venv, not in kind's image)
    from kubernetes import config
    config.load_incluster_config()
    incluster = True
except ImportError:
    incluster = None
print(json.dumps({
    "sa_files": sorted(f for f in os.listdir(sa) if not f.startswith("..")),
    "namespace": open(sa + "/namespace").read(),
    "secret": open("/tmp/substrate-mounts/secret/key").read(),
    "labels": open("/tmp/substrate-mounts/info/labels").read(),
    "user": review["status"]["userInfo"]["username"],
    "incluster": incluster,
}))
"""
    container = m.python_container(
        code,
        volumeMounts=[
            {"name": "secret", "mountPath": "/tmp/substrate-mounts/secret", "readOnly": True},
            {"name": "info", "mountPath": "/tmp/substrate-mounts/info"},
        ],
    )
    volumes = [
        {"name": "secret", "secret": {"secretName": "files"}},
        {
            "name": "info",
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
    ]
    cluster.apply(m.pod("volpod", container, volumes=volumes), namespace=namespace)
    pod = _finished(cluster, "volpod", namespace)
    logs = cluster.kubectl("logs", "volpod", "-n", namespace).stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    seen = json.loads(logs.strip().splitlines()[-1])
    assert seen["sa_files"] == ["ca.crt", "namespace", "token"]
    assert seen["namespace"] == namespace
    assert seen["secret"] == "value"
    assert seen["labels"] == 'app="volpod"'
    assert seen["user"] == f"system:serviceaccount:{namespace}:default"
    assert seen["incluster"] in (True, None)
