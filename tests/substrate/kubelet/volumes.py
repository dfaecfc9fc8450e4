"""What a container sees: its environment and its volumes, resolved from the API.

Environment: `env` (values, `$(VAR)` references, and valueFrom secretKeyRef, configMapKeyRef,
fieldRef, resourceFieldRef) and `envFrom`, as a kubelet resolves them, plus what a container
on a node would have: PATH (with the kubelet's Python first, so `python` is the venv's),
HOME, HOSTNAME and the KUBERNETES_SERVICE_* variables pointing at the real API server.

Volumes are materialised as directories under the pod's state dir: emptyDir, secret,
configMap, downwardAPI, projected (with serviceAccountToken from the TokenRequest API) and
hostPath (used in place). Anything else (PVCs, CSI, ...) becomes an empty directory, with a
warning in the kubelet's log. Files are written once, at pod start, not kept up to date.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from tests.substrate.kubeapi import ApiError, JsonDict, KubeClient
from tests.substrate.kubelet.jsonlog import JsonLog
from tests.substrate.kubelet.runtime import Mount

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


class ConfigError(Exception):
    """The pod cannot start yet: a referenced Secret/ConfigMap/key is missing, or similar.

    `reason` is what the container's waiting state shows (CreateContainerConfigError for env,
    ContainerCreating for volumes, whose failures a real kubelet reports as FailedMount events).
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def parse_quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity ("64Mi", "500m", "1e3", 2) as a number."""
    text = str(value).strip()
    for suffix, factor in _BINARY_SUFFIXES.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    if text and text[-1] in _DECIMAL_SUFFIXES and not text[-2:-1].isalpha():
        return float(text[:-1]) * _DECIMAL_SUFFIXES[text[-1]]
    return float(text)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REF.sub(replace, text)


def field_value(pod: JsonDict, path: str) -> str:
    """The value of a downward-API fieldPath on `pod`."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
        "status.podIP": status.get("podIP") or "127.0.0.1",
        "status.hostIPs": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    raise ConfigError("CreateContainerConfigError", f"unsupported fieldPath {path!r}")


def resource_value(
    pod: JsonDict, ref: JsonDict, default_container: str, capacity: Mapping[str, str]
) -> str:
    """A resourceFieldRef: the container's limit (or the node's allocatable) over a divisor."""
    container_name = ref.get("containerName") or default_container
    resource = str(ref.get("resource", ""))
    containers = (pod.get("spec") or {}).get("containers") or []
    container: JsonDict = next((c for c in containers if c.get("name") == container_name), {})
    kind, _, name = resource.partition(".")
    resources = (container.get("resources") or {}).get(kind) or {}
    raw = resources.get(name)
    if raw is None:
        raw = capacity.get(name, "0") if kind == "limits" else "0"
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(parse_quantity(raw) / divisor))


class Resolver:
    """Reads Secrets, ConfigMaps and tokens for one pod; caches them for one resolution."""

    def __init__(self, api: KubeClient, pod: JsonDict):
        self._api = api
        self._pod = pod
        self._namespace = pod["metadata"]["namespace"]
        self._cache: dict[tuple[str, str], JsonDict | None] = {}

    def _get(self, kind: str, name: str) -> JsonDict | None:
        key = (kind, name)
        if key not in self._cache:
            plural = "secrets" if kind == "Secret" else "configmaps"
            try:
                self._cache[key] = self._api.get(
                    f"/api/v1/namespaces/{self._namespace}/{plural}/{name}"
                )
            except ApiError as exc:
                if not exc.not_found:
                    raise
                self._cache[key] = None
        return self._cache[key]

    def data(self, kind: str, name: str, *, optional: bool, reason: str) -> dict[str, bytes]:
        """The decoded data of a Secret or ConfigMap (empty if optional and missing)."""
        obj = self._get(kind, name)
        if obj is None:
            if optional:
                return {}
            raise ConfigError(reason, f'{kind.lower()} "{name}" not found')
        if kind == "Secret":
            return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        values = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        values.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return values

    def token(self, source: JsonDict) -> bytes:
        """A service-account token bound to this pod, from the TokenRequest API."""
        meta = self._pod["metadata"]
        account = (self._pod.get("spec") or {}).get("serviceAccountName") or "default"
        spec: JsonDict = {
            "expirationSeconds": int(source.get("expirationSeconds") or 3607),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if source.get("audience"):
            spec["audiences"] = [source["audience"]]
        try:
            result = self._api.create(
                f"/api/v1/namespaces/{self._namespace}/serviceaccounts/{account}/token",
                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
            )
        except ApiError as exc:
            raise ConfigError("ContainerCreating", f"token for {account}: {exc}") from exc
        return str(result["status"]["token"]).encode()


def container_env(
    resolver: Resolver,
    pod: JsonDict,
    container: JsonDict,
    *,
    base: Mapping[str, str],
    capacity: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment: `base` (PATH, HOME, ...) overlaid by envFrom, then env."""
    env = dict(base)
    reason = "CreateContainerConfigError"
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if ref:
                values = resolver.data(
                    kind, ref.get("name", ""), optional=bool(ref.get("optional")), reason=reason
                )
                for name, value in values.items():
                    if _ENV_NAME.match(prefix + name):
                        env[prefix + name] = value.decode(errors="replace")
    for var in container.get("env") or []:
        name = var.get("name", "")
        if "value" in var:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        source = var.get("valueFrom") or {}
        if "value" not in var and not source:
            env[name] = ""
        elif "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in source:
            env[name] = resource_value(
                pod, source["resourceFieldRef"], container.get("name", ""), capacity
            )
        else:
            for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                ref = source.get(key)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                values = resolver.data(kind, ref.get("name", ""), optional=optional, reason=reason)
                if ref.get("key") in values:
                    env[name] = values[ref["key"]].decode(errors="replace")
                elif not optional:
                    raise ConfigError(
                        reason,
                        f"couldn't find key {ref.get('key')} in {kind} "
                        f"{pod['metadata']['namespace']}/{ref.get('name')}",
                    )
    return env


def _write_file(directory: Path, relative: str, content: bytes, mode: int) -> None:
    target = (directory / relative).resolve()
    if not target.is_relative_to(directory.resolve()):
        raise ConfigError("ContainerCreating", f"volume path {relative!r} escapes the volume")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    target.chmod(mode)


def _project_items(
    directory: Path, values: Mapping[str, bytes], items: list[JsonDict] | None, mode: int
) -> None:
    if not items:
        for key, value in values.items():
            _write_file(directory, key, value, mode)
        return
    for item in items:
        key = item.get("key", "")
        if key not in values:
            continue
        _write_file(directory, item.get("path") or key, values[key], item.get("mode") or mode)


def _project_downward(
    directory: Path, pod: JsonDict, source: JsonDict, mode: int, capacity: Mapping[str, str]
) -> None:
    for item in source.get("items") or []:
        if item.get("fieldRef"):
            value = field_value(pod, item["fieldRef"].get("fieldPath", ""))
        elif item.get("resourceFieldRef"):
            value = resource_value(pod, item["resourceFieldRef"], "", capacity)
        else:
            continue
        _write_file(directory, item.get("path", ""), value.encode(), item.get("mode") or mode)


def _project_source(
    resolver: Resolver,
    directory: Path,
    pod: JsonDict,
    source: JsonDict,
    mode: int,
    capacity: Mapping[str, str],
) -> None:
    """One source of a projected volume (or a whole secret/configMap/downwardAPI volume)."""
    reason = "ContainerCreating"
    if "secret" in source:
        ref = source["secret"]
        name = ref.get("name") or ref.get("secretName", "")
        values = resolver.data("Secret", name, optional=bool(ref.get("optional")), reason=reason)
        _project_items(directory, values, ref.get("items"), ref.get("defaultMode") or mode)
    elif "configMap" in source:
        ref = source["configMap"]
        values = resolver.data(
            "ConfigMap", ref.get("name", ""), optional=bool(ref.get("optional")), reason=reason
        )
        _project_items(directory, values, ref.get("items"), ref.get("defaultMode") or mode)
    elif "downwardAPI" in source:
        _project_downward(directory, pod, source["downwardAPI"], mode, capacity)
    elif "serviceAccountToken" in source:
        token_source = source["serviceAccountToken"]
        _write_file(
            directory, token_source.get("path", "token"), resolver.token(token_source), mode
        )


def prepare_volumes(
    resolver: Resolver,
    pod: JsonDict,
    volumes_dir: Path,
    *,
    capacity: Mapping[str, str],
    log: JsonLog,
) -> dict[str, Path]:
    """Materialise the pod's volumes; returns volume name -> directory to bind-mount."""
    prepared: dict[str, Path] = {}
    pod_key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name", "")
        if "hostPath" in volume:
            path = Path(volume["hostPath"].get("path", "/"))
            if volume["hostPath"].get("type") in ("DirectoryOrCreate", None, ""):
                path.mkdir(parents=True, exist_ok=True)
            prepared[name] = path
            continue
        directory = volumes_dir / name
        directory.mkdir(parents=True, exist_ok=True)
        prepared[name] = directory
        if "emptyDir" in volume:
            continue
        if "secret" in volume:
            _project_source(resolver, directory, pod, {"secret": volume["secret"]}, 0o644, {})
        elif "configMap" in volume:
            source = {"configMap": volume["configMap"]}
            _project_source(resolver, directory, pod, source, 0o644, {})
        elif "downwardAPI" in volume:
            mode = volume["downwardAPI"].get("defaultMode") or 0o644
            _project_downward(directory, pod, volume["downwardAPI"], mode, capacity)
        elif "projected" in volume:
            mode = volume["projected"].get("defaultMode") or 0o644
            for source in volume["projected"].get("sources") or []:
                _project_source(resolver, directory, pod, source, mode, capacity)
        else:
            kinds = sorted(k for k in volume if k != "name")
            log.warning("volume.unsupported", pod=pod_key, volume=name, kinds=kinds)
    return prepared


def container_mounts(container: JsonDict, volumes: Mapping[str, Path]) -> list[Mount]:
    """The container's volumeMounts as bind mounts (subPath resolved inside the volume)."""
    mounts = []
    for mount in container.get("volumeMounts") or []:
        source = volumes.get(mount.get("name", ""))
        target = mount.get("mountPath")
        if source is None or not target:
            raise ConfigError(
                "CreateContainerConfigError", f"volume {mount.get('name')!r} not found"
            )
        if mount.get("subPath"):
            source = source / mount["subPath"]
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(str(source), target, bool(mount.get("readOnly"))))
    return mounts


def base_environment(
    *, python: Path, api_host: str, api_port: int, pod_name: str, home: str | None = None
) -> dict[str, str]:
    """What every container's environment starts from (before the pod's own env)."""
    path = os.pathsep.join([str(python.parent), os.environ.get("PATH", "/usr/bin:/bin")])
    port = str(api_port)
    return {
        "PATH": path,
        "HOME": home or os.environ.get("HOME", "/root"),
        "HOSTNAME": pod_name,
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "KUBERNETES_SERVICE_HOST": api_host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": f"tcp://{api_host}:{port}",
        "KUBERNETES_PORT_443_TCP": f"tcp://{api_host}:{port}",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": port,
        "KUBERNETES_PORT_443_TCP_ADDR": api_host,
    }
