"""``python -m stepstone_operator``: run the operator (the image's operator role)."""

from __future__ import annotations

import asyncio
import logging
import sys

import kopf

from stepstone import logs
from stepstone_operator.config import OperatorConfig
from stepstone_operator.handlers import register

DEEP_JSON = 25_000
"""The API server stores objects nested up to 10,000 levels; the operator must be able to read
them (to report a run whose input is too deep), so Python's recursion limit is raised."""


def main(argv: list[str] | None = None) -> int:
    sys.setrecursionlimit(DEEP_JSON)
    config = OperatorConfig.from_args(argv)
    logs.configure(fmt=config.log_format, level=config.log_level)
    logs.configure(fmt=config.log_format, level="WARNING", logger_name="kopf")
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    registry = kopf.OperatorRegistry()
    register(registry, config)
    namespaces = list(config.namespaces)
    asyncio.run(
        kopf.operator(
            registry=registry,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=(
                f"http://0.0.0.0:{config.liveness_port}/healthz" if config.liveness_port else None
            ),
            standalone=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
