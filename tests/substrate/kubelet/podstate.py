"""What the kubelet keeps in memory about one pod, and small helpers about pods.

Everything durable (container attempts, exits, termination deadlines, eviction) is on disk
(see `runtime.py`), so this is only the newest copy of the pod plus caches and retry timers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from tests.substrate.kubeapi import JsonDict
from tests.substrate.kubelet import runtime as rt
from tests.substrate.kubelet import volumes as vol

#: How an image name asks for an image pull failure (images are never pulled otherwise).
BAD_IMAGE_PREFIX = "invalid.example/"
BAD_IMAGE_TAG = ":does-not-exist"

#: Marker files in the pod's state dir (so they survive a kubelet restart).
TERMINATING_FILE = "terminating.json"
#: Written when the kubelet itself ends the pod: node-pressure eviction, activeDeadlineSeconds.
STOPPED_BY_KUBELET_FILE = "evicted.json"


def bad_image(image: str) -> bool:
    return image.startswith(BAD_IMAGE_PREFIX) or image.endswith(BAD_IMAGE_TAG)


def parse_time(value: str | None) -> float:
    """An RFC 3339 timestamp (seconds precision, as the API and the shim write them) as epoch."""
    if not value:
        return 0.0
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def resource_version(pod: JsonDict) -> int:
    try:
        return int(pod["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return 0


def log_tail(path: Path, max_lines: int = 80, max_bytes: int = 2048) -> str:
    """The end of a container's log, as FallbackToLogsOnError uses it."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-max_lines:])


def container_specs(pod: JsonDict) -> tuple[list[JsonDict], list[JsonDict]]:
    """The pod's init containers and regular containers."""
    spec = pod.get("spec") or {}
    return list(spec.get("initContainers") or []), list(spec.get("containers") or [])


def container_names(pod: JsonDict) -> list[str]:
    init, regular = container_specs(pod)
    return [c.get("name", "") for c in init + regular]


@dataclass
class PodState:
    uid: str
    namespace: str
    name: str
    node: str
    paths: rt.PodPaths
    pod: JsonDict
    #: The pod is no longer in the API (deleted, or missing from a relist).
    gone: bool = False
    #: Volume name -> directory, once prepared (None until then, and after a kubelet restart).
    volumes: dict[str, Path] | None = None
    config_error: vol.ConfigError | None = None
    config_retry_at: float = 0.0
    image_pull_reported: set[str] = field(default_factory=set)
    #: Per container: why it could not start, and when to try again.
    start_errors: dict[str, tuple[vol.ConfigError, float]] = field(default_factory=dict)
    last_sent: JsonDict | None = None
    last_checked: float = 0.0
    termination_messages: dict[Path, str] = field(default_factory=dict)
    start_time: str = field(default_factory=rt.now_rfc3339)
    #: When the kubelet first saw the pod stopped (finishedAt of containers that never ran).
    stopped_at: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def sandbox_ready(self) -> bool:
        return self.volumes is not None or self.paths.volumes.exists()
