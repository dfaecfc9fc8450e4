"""The test kubelet: runs the pods bound to its nodes as local processes.

Run it with `python -m tests.substrate.kubelet --kubeconfig ... --nodes node-1,node-2
--root-dir ...` (see `settings.py` for every flag). What it does, as a kubelet would: registers
its Nodes with capacity and renews their Leases; runs each pod's containers (command, args,
resolved env, working directory, volumes bind-mounted in a private mount namespace) through a
shim; reports pod and container status (phases, exit codes, Completed/Error/OOMKilled,
restarts with back-off); honours deletion (SIGTERM, grace period, SIGKILL, then deletes the
pod); serves `kubectl logs`. What it adds for tests: a control endpoint to kill a container's
process, silence or restore a node, and evict a pod (see `serving.py`).

Modules, one concept each:
    settings      the flags, parsed into a frozen object
    app           the process: threads, watchers, start-up
    heartbeating  Node registration, Lease renewal, node status
    syncing       one pod's reconcile step (start, restart, OOM, terminate, report)
    status        pure: pod phase, conditions and container statuses
    volumes       env and volume resolution from Secrets, ConfigMaps, the downward API, tokens
    runtime       container attempts as shim processes and files on disk
    _shim         the per-container parent process (a script, standard library only)
    serving       the kubelet API (for kubectl logs) and the control endpoint
    jsonlog       structured log lines
"""
