"""Starting containers: resolve volumes, env and argv, then launch an attempt via the runtime.

Why apart from syncing: this is where the API is read (Secrets, ConfigMaps, tokens) and where
a pod can be stuck waiting for something that does not exist yet, so it owns the retry
timers: a missing Secret is looked up again every CONFIG_RETRY_SECONDS, not every tick.
"""

from __future__ import annotations

import os
import time

from tests.substrate.kubeapi import ApiError, JsonDict, KubeClient
from tests.substrate.kubelet import runtime as rt
from tests.substrate.kubelet import volumes as vol
from tests.substrate.kubelet.jsonlog import JsonLog
from tests.substrate.kubelet.podstate import PodState
from tests.substrate.kubelet.settings import KubeletSettings

CONFIG_RETRY_SECONDS = 2.0


class ContainerStarter:
    def __init__(
        self,
        *,
        api: KubeClient,
        runtime: rt.Runtime,
        settings: KubeletSettings,
        log: JsonLog,
        api_host: str,
        api_port: int,
        mounts_enabled: bool,
    ):
        self._api = api
        self._runtime = runtime
        self._settings = settings
        self._log = log
        self._api_host = api_host
        self._api_port = api_port
        self._mounts_enabled = mounts_enabled

    def ensure_volumes(self, state: PodState) -> bool:
        """Prepare the pod's volumes once; False (and `state.config_error`) if not possible yet."""
        if state.volumes is not None:
            return True
        now = time.monotonic()
        if now < state.config_retry_at:
            return False
        try:
            state.volumes = vol.prepare_volumes(
                vol.Resolver(self._api, state.pod),
                state.pod,
                state.paths.volumes,
                capacity=self._settings.capacity,
                log=self._log,
            )
            state.config_error = None
            return True
        except vol.ConfigError as exc:
            error = exc
        except (ApiError, OSError) as exc:
            error = vol.ConfigError("ContainerCreating", str(exc))
        if state.config_error is None or state.config_error.message != error.message:
            self._log.warning("pod.volumes_failed", pod=state.key, error=error.message)
        state.config_error = error
        state.config_retry_at = now + CONFIG_RETRY_SECONDS
        return False

    def launch(self, state: PodState, container: JsonDict, index: int) -> vol.ConfigError | None:
        """Start attempt `index` of a container; a ConfigError says why it cannot start.

        After a failure the same error is returned without retrying for CONFIG_RETRY_SECONDS
        (the missing Secret may be created any moment, but not every tick).
        """
        name = container.get("name", "")
        previous = state.start_errors.get(name)
        if previous is not None and time.monotonic() < previous[1]:
            return previous[0]
        error = self._try_launch(state, container, index)
        if error is None:
            state.start_errors.pop(name, None)
        else:
            if previous is None or previous[0].message != error.message:
                self._log.warning(
                    "container.config_error", pod=state.key, container=name, error=error.message
                )
            state.start_errors[name] = (error, time.monotonic() + CONFIG_RETRY_SECONDS)
        return error

    def _try_launch(
        self, state: PodState, container: JsonDict, index: int
    ) -> vol.ConfigError | None:
        if state.volumes is None:
            return vol.ConfigError("ContainerCreating", "volumes not prepared")
        name = container.get("name", "")
        try:
            base = vol.base_environment(
                python=self._settings.python,
                api_host=self._api_host,
                api_port=self._api_port,
                pod_name=state.name,
            )
            env = vol.container_env(
                vol.Resolver(self._api, state.pod),
                state.pod,
                container,
                base=base,
                capacity=self._settings.capacity,
            )
            image_dir = self._settings.image_paths.get(container.get("image", ""))
            if image_dir is not None:
                env["PYTHONPATH"] = os.pathsep.join(
                    filter(None, [str(image_dir), env.get("PYTHONPATH")])
                )
            command = [vol.expand(str(a), env) for a in container.get("command") or []]
            args = [vol.expand(str(a), env) for a in container.get("args") or []]
            argv = command + args
            if not argv:
                raise vol.ConfigError(
                    "CreateContainerError",
                    "no command: the substrate kubelet does not pull images, so a container "
                    "needs `command` (or `args`)",
                )
            mounts = vol.container_mounts(container, state.volumes)
        except vol.ConfigError as exc:
            return exc
        except ApiError as exc:
            return vol.ConfigError("CreateContainerConfigError", str(exc))
        cwd = container.get("workingDir") or str(state.paths.pod_dir / "work")
        spec = rt.LaunchSpec(
            argv=argv, env=env, cwd=cwd, mounts=mounts if self._mounts_enabled else []
        )
        self._runtime.launch(state.paths, name, index, spec)
        self._log.info("container.start", pod=state.key, container=name, attempt=index, argv=argv)
        return None
