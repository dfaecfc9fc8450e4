"""A small, typed Kubernetes REST client for the substrate (kubelet, fixtures, start-up checks).

Why not the `kubernetes` package: the kubelet needs exactly a dozen calls (list, watch, get,
create, patch, delete, a status patch with a resourceVersion precondition) and must never hang
or crash on an odd object, so it talks plain JSON over urllib3 with explicit timeouts and sees
every object as the dict the API server sent. Also writes and reads kubeconfig files.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
import yaml

JsonDict = dict[str, Any]

#: The patch content types, by the names kubectl uses for them.
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}


class ApiError(Exception):
    """The API server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, reason: str, message: str, body: JsonDict | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class Credentials:
    """What a client needs to reach one API server: its URL and PEM material."""

    server: str
    ca_pem: bytes | None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.server)
        return parts.hostname or "127.0.0.1", parts.port or 443


def write_kubeconfig(path: Path, creds: Credentials, *, name: str, user: str) -> None:
    """Write a self-contained kubeconfig (certificates embedded) for one user and cluster."""

    def b64(data: bytes | None) -> str:
        return base64.b64encode(data or b"").decode()

    user_entry: JsonDict = {}
    if creds.cert_pem is not None:
        user_entry["client-certificate-data"] = b64(creds.cert_pem)
        user_entry["client-key-data"] = b64(creds.key_pem)
    if creds.token is not None:
        user_entry["token"] = creds.token
    cluster_entry: JsonDict = {"server": creds.server}
    if creds.ca_pem is not None:
        cluster_entry["certificate-authority-data"] = b64(creds.ca_pem)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster_entry}],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def read_kubeconfig(path: Path) -> Credentials:
    """Read the current context of a kubeconfig (inline data or file references)."""
    config = yaml.safe_load(path.read_text())
    context_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    context = contexts[context_name] if context_name else next(iter(contexts.values()))
    cluster = clusters[context["cluster"]]
    user = users.get(context.get("user", ""), {})

    def material(entry: Mapping[str, Any], key: str) -> bytes | None:
        if entry.get(f"{key}-data"):
            return base64.b64decode(entry[f"{key}-data"])
        if entry.get(key):
            file = Path(entry[key])
            return (file if file.is_absolute() else path.parent / file).read_bytes()
        return None

    return Credentials(
        server=cluster["server"],
        ca_pem=material(cluster, "certificate-authority"),
        cert_pem=material(user, "client-certificate"),
        key_pem=material(user, "client-key"),
        token=user.get("token"),
    )


def ssl_context_for(creds: Credentials) -> ssl.SSLContext:
    """A TLS context that trusts the cluster's CA and presents the client certificate."""
    context = ssl.create_default_context(
        cadata=creds.ca_pem.decode() if creds.ca_pem is not None else None
    )
    if creds.cert_pem is not None and creds.key_pem is not None:
        # ssl can only load a key pair from files; they live just long enough to be read.
        with tempfile.TemporaryDirectory(prefix="kubeapi-") as tmp:
            cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
            cert.write_bytes(creds.cert_pem)
            key.write_bytes(creds.key_pem)
            context.load_cert_chain(cert, key)
    return context


class KubeClient:
    """JSON over HTTPS to one API server. Thread-safe (urllib3's pool is)."""

    def __init__(self, creds: Credentials, *, timeout: float = 15.0, pool_size: int = 16):
        self.creds = creds
        self._timeout = timeout
        headers = {"Accept": "application/json", "User-Agent": "stepstone-substrate"}
        if creds.token:
            headers["Authorization"] = f"Bearer {creds.token}"
        self._pool = urllib3.PoolManager(
            ssl_context=ssl_context_for(creds),
            maxsize=pool_size,
            block=False,
            retries=False,
            headers=headers,
        )

    @classmethod
    def from_kubeconfig(cls, path: Path, **kwargs: Any) -> KubeClient:
        return cls(read_kubeconfig(path), **kwargs)

    def _url(self, path: str, params: Mapping[str, object] | None) -> str:
        query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in (params or {}).items()}
        query = {k: v for k, v in query.items() if v is not None}
        return self.creds.server.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, object] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> JsonDict:
        """One request; returns the decoded JSON body or raises ApiError."""
        headers = {"Content-Type": content_type} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        try:
            response = self._pool.request(
                method,
                self._url(path, params),
                body=data,
                headers=headers,
                timeout=urllib3.Timeout(connect=5.0, read=timeout or self._timeout),
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, "Unreachable", str(exc)) from exc
        payload = response.data
        try:
            decoded: Any = json.loads(payload) if payload else {}
        except ValueError:
            decoded = {"message": payload.decode(errors="replace")}
        if response.status >= 400:
            decoded = decoded if isinstance(decoded, dict) else {}
            raise ApiError(
                response.status,
                str(decoded.get("reason", "")),
                str(decoded.get("message", "")),
                decoded,
            )
        return decoded if isinstance(decoded, dict) else {"value": decoded}

    def get(self, path: str, **params: object) -> JsonDict:
        return self.request("GET", path, params=params)

    def create(self, path: str, body: JsonDict, **params: object) -> JsonDict:
        return self.request("POST", path, params=params, body=body)

    def replace(self, path: str, body: JsonDict) -> JsonDict:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: object, *, patch_type: str = "merge") -> JsonDict:
        return self.request("PATCH", path, body=body, content_type=PATCH_TYPES[patch_type])

    def delete(self, path: str, body: JsonDict | None = None, **params: object) -> JsonDict:
        return self.request("DELETE", path, params=params, body=body)

    def watch(
        self, path: str, *, timeout_seconds: int = 60, **params: object
    ) -> Iterator[JsonDict]:
        """Yield watch events ({"type", "object"}) until the server ends the watch.

        An ERROR event is raised as ApiError (410 Gone means: list again).
        """
        query = {"watch": "true", "timeoutSeconds": timeout_seconds, **params}
        try:
            response = self._pool.request(
                "GET",
                self._url(path, query),
                preload_content=False,
                timeout=urllib3.Timeout(connect=5.0, read=timeout_seconds + 15.0),
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, "Unreachable", str(exc)) from exc
        try:
            if response.status >= 400:
                body = json.loads(response.read() or b"{}")
                raise ApiError(response.status, body.get("reason", ""), body.get("message", ""))
            buffer = b""
            for chunk in response.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(
                            int(status.get("code", 500)),
                            str(status.get("reason", "")),
                            str(status.get("message", "")),
                        )
                    yield event
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, "WatchBroken", str(exc)) from exc
        finally:
            # A watch ends early (error, consumer stopped): drop the half-read connection.
            response.close()
            response.release_conn()
