# syntax=docker/dockerfile:1
#
# stepstone: one image, two roles.
#   operator  python -m stepstone_operator         (the Helm chart's Deployment)
#   runner    python -m stepstone runner           (set by the operator on every runner pod)
# plus the CLI, `stepstone` (also `python -m stepstone`), e.g. `stepstone db migrate`.
#
# Workflow images are built FROM this one with the workflow code added: examples/Dockerfile.
#
#   docker build -t stepstone:dev .
#
# Runs as uid/gid 10001 (the uid the operator gives runner pods), with nothing written outside
# /tmp: bytecode is compiled at build time, so a read-only root filesystem works.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the stepstone wheel and every dependency's wheel ----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner/ runner/
COPY operator/ operator/
RUN pip wheel --wheel-dir /wheels ".[operator]"

# ---- final: the wheels installed on a clean slim Python, no build context left behind -------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="stepstone" \
      org.opencontainers.image.description="Durable Python workflows on Kubernetes: operator and runner" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    PYTHONPATH=/app
RUN groupadd --system --gid 10001 stepstone \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin stepstone
# Versions are pinned by the wheels built above (--no-index: nothing else is reachable).
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "stepstone[operator]" \
 && python -m stepstone --help >/dev/null \
 && python -m stepstone_operator --help >/dev/null
# Workflow code goes here (or is pip-installed); /app is on PYTHONPATH and is the working dir.
WORKDIR /app
USER 10001:10001
EXPOSE 8080 8081
CMD ["python", "-m", "stepstone_operator"]
