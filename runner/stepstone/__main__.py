"""``python -m stepstone``: the CLI (``python -m stepstone runner`` is the pod entrypoint)."""

from stepstone.cli import main

raise SystemExit(main())
