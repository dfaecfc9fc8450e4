"""The test substrate: a real Kubernetes control plane, built from Go modules, and a test kubelet.

Why: these machines have no Docker, so integration tests cannot use kind. Instead etcd,
kube-apiserver, kube-controller-manager and kube-scheduler run as local processes, and a small
Python kubelet (`tests.substrate.kubelet`) runs the pods bound to its nodes as local processes.
See docs/test-substrate.md for what it does and does not do.

This package's `__init__` stays cheap on purpose: the kubelet and its container shim import it.
"""

from tests.substrate.waiting import WaitTimeoutError, wait_for

__all__ = ["WaitTimeoutError", "wait_for"]
