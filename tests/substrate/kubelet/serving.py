"""The kubelet's two HTTP endpoints.

- The kubelet API (HTTPS, client certificates from the cluster CA): what kube-apiserver dials
  for `kubectl logs` (`GET /containerLogs/<ns>/<pod>/<container>?follow=&previous=&tailLines=
  &limitBytes=`), at the port in each Node's status.daemonEndpoints.
- The control endpoint (plain HTTP on 127.0.0.1): fault injection for tests. JSON in and out.

      GET  /healthz                                    503 until started
      GET  /v1/nodes                                   [{"name", "silenced"}]
      POST /v1/nodes/<node>/silence | /restore
      GET  /v1/pods                                    what runs where, pids, log paths
      GET  /v1/pods/<ns>/<pod>
      POST /v1/pods/<ns>/<pod>/signal   {"signal": 9, "container": null}
      POST /v1/pods/<ns>/<pod>/evict    {"message": "...", "grace_seconds": 0}
"""

from __future__ import annotations

import contextlib
import json
import signal
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from tests.substrate.kubeapi import JsonDict
from tests.substrate.kubelet.jsonlog import JsonLog
from tests.substrate.kubelet.podstate import PodState
from tests.substrate.kubelet.runtime import Attempt
from tests.substrate.kubelet.syncing import PodSyncer


class NodeControl(Protocol):
    name: str

    @property
    def silenced(self) -> bool: ...

    def silence(self) -> None: ...

    def restore(self) -> None: ...


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _parse_signal(value: object) -> int:
    if isinstance(value, int):
        return value
    text = str(value).upper()
    if text.isdigit():
        return int(text)
    return int(getattr(signal, text if text.startswith("SIG") else f"SIG{text}"))


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to `routes` (set per server class); quiet access log."""

    routes: Callable[[_Handler, str, list[str], Mapping[str, list[str]]], None]
    log_sink: JsonLog

    def log_message(self, format: str, *args: Any) -> None:
        self.log_sink.debug("http.request", line=format % args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            type(self).routes(self, method, parts, parse_qs(url.query))
        except HttpError as exc:
            self.send_json(exc.status, {"error": exc.message})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:
            self.log_sink.exception("http.error", exc=exc, path=self.path)
            with contextlib.suppress(OSError):
                self.send_json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def body(self) -> JsonDict:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        data = json.loads(self.rfile.read(length) or b"{}")
        return data if isinstance(data, dict) else {}

    def send_json(self, status: int, payload: object) -> None:
        data = json.dumps(payload, indent=1).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _pod(syncer: PodSyncer, namespace: str, name: str) -> PodState:
    state = syncer.find(namespace, name)
    if state is None:
        raise HttpError(404, f'pod "{namespace}/{name}" is not running on this kubelet')
    return state


def control_server(
    *,
    port: int,
    syncer: PodSyncer,
    nodes: Mapping[str, NodeControl],
    ready: threading.Event,
    log: JsonLog,
) -> ThreadingHTTPServer:
    """The fault-control endpoint on 127.0.0.1:`port` (0 picks a free port). Its /healthz
    answers 503 until `ready` (nodes registered, pods known)."""

    def routes(
        handler: _Handler, method: str, parts: list[str], query: Mapping[str, list[str]]
    ) -> None:
        match method, parts:
            case "GET", ["healthz"]:
                if not ready.is_set():
                    raise HttpError(503, "starting")
                handler.send_text(200, "ok")
            case "GET", ["v1", "nodes"]:
                handler.send_json(
                    200, [{"name": n.name, "silenced": n.silenced} for n in nodes.values()]
                )
            case "POST", ["v1", "nodes", node, ("silence" | "restore") as action]:
                if node not in nodes:
                    raise HttpError(404, f"no node {node!r} on this kubelet")
                getattr(nodes[node], action)()
                handler.send_json(200, {"name": node, "silenced": nodes[node].silenced})
            case "GET", ["v1", "pods"]:
                handler.send_json(200, syncer.describe_all())
            case "GET", ["v1", "pods", namespace, name]:
                handler.send_json(200, syncer.describe(_pod(syncer, namespace, name)))
            case "POST", ["v1", "pods", namespace, name, "signal"]:
                body = handler.body()
                state = _pod(syncer, namespace, name)
                sig = _parse_signal(body.get("signal", signal.SIGKILL))
                pids = syncer.signal_container(state, body.get("container"), sig)
                if not pids:
                    raise HttpError(409, f"no running container in {namespace}/{name} to signal")
                handler.send_json(200, {"pids": pids, "signal": sig})
            case "POST", ["v1", "pods", namespace, name, "evict"]:
                body = handler.body()
                state = _pod(syncer, namespace, name)
                message = str(body.get("message") or "The node was low on resource: memory. ")
                grace = float(body.get("grace_seconds") or 0)
                syncer.stop_by_kubelet(
                    state, reason="Evicted", message=message, grace_seconds=grace
                )
                handler.send_json(200, {"evicted": f"{namespace}/{name}"})
            case _:
                raise HttpError(404, f"no route for {method} /{'/'.join(parts)}")

    handler = type("ControlHandler", (_Handler,), {"routes": routes, "log_sink": log})
    return _Server(("127.0.0.1", port), handler)


def _read_log(path: Path, *, tail_lines: int | None, limit_bytes: int | None) -> bytes:
    try:
        data = path.read_bytes()
    except OSError:
        return b""
    if tail_lines is not None:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
    if limit_bytes is not None:
        data = data[:limit_bytes]
    return data


def kubelet_api_server(
    *,
    port: int,
    syncer: PodSyncer,
    cert_file: Path,
    key_file: Path,
    client_ca_file: Path | None,
    log: JsonLog,
) -> ThreadingHTTPServer:
    """The HTTPS kubelet API that kube-apiserver proxies `kubectl logs` to."""

    def first(query: Mapping[str, list[str]], key: str) -> str | None:
        values = query.get(key)
        return values[0] if values else None

    def container_logs(
        handler: _Handler, namespace: str, name: str, container: str, query: Mapping[str, list[str]]
    ) -> None:
        state = _pod(syncer, namespace, name)
        if not container:
            names = [
                c.get("name", "") for c in (state.pod.get("spec") or {}).get("containers") or []
            ]
            container = names[0] if names else ""
        attempts = syncer.attempts(state, container)
        previous = first(query, "previous") in ("true", "1")
        if previous:
            if len(attempts) < 2:
                raise HttpError(
                    400, f'previous terminated container "{container}" in pod "{name}" not found'
                )
            target: Attempt = attempts[-2]
        elif attempts:
            target = attempts[-1]
        else:
            raise HttpError(400, f'container "{container}" in pod "{name}" is waiting to start')
        tail = first(query, "tailLines")
        limit = first(query, "limitBytes")
        data = _read_log(
            target.log_path,
            tail_lines=int(tail) if tail else None,
            limit_bytes=int(limit) if limit else None,
        )
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
        if first(query, "follow") not in ("true", "1") or previous or limit:
            return
        position = target.log_path.stat().st_size if target.log_path.exists() else 0
        index = target.index
        while True:
            current = syncer.attempts(state, container)
            done = not current or current[-1].index != index or current[-1].exited
            with target.log_path.open("rb") as f:
                f.seek(position)
                chunk = f.read()
            if chunk:
                position += len(chunk)
                handler.wfile.write(chunk)
                handler.wfile.flush()
            elif done:
                return
            time.sleep(0.2)

    def routes(
        handler: _Handler, method: str, parts: list[str], query: Mapping[str, list[str]]
    ) -> None:
        match method, parts:
            case "GET", ["healthz"]:
                handler.send_text(200, "ok")
            case "GET", ["containerLogs", namespace, name, container]:
                container_logs(handler, namespace, name, container, query)
            case "GET", ["containerLogs", namespace, name]:
                container_logs(handler, namespace, name, "", query)
            case _:
                raise HttpError(404, f"the substrate kubelet does not serve /{'/'.join(parts)}")

    handler = type("KubeletApiHandler", (_Handler,), {"routes": routes, "log_sink": log})
    server = _Server(("127.0.0.1", port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        context.load_verify_locations(client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    # The TLS handshake happens in the handler's thread, not in the accept loop.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    return server


def serve_in_background(server: ThreadingHTTPServer, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return thread
