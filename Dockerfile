# The operator's image: `make image` (needs Docker; our build machines have none, so this file is
# checked by tests for what can be checked without building it: see tests/unit/test_image.py).
# Build stage: a virtualenv from the runtime lock (hashes required) plus the package itself.
# Final stage: the same slim base, the virtualenv only (no pip cache, no compilers, no tests),
# a non-root user, and the operator as the entrypoint.
ARG PYTHON_IMAGE=docker.io/library/python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements-runtime.lock ./
RUN python -m venv /opt/modelrollout \
 && /opt/modelrollout/bin/pip install --require-hashes --only-binary=:all: -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/modelrollout/bin/pip install --no-deps --no-build-isolation . \
 && /opt/modelrollout/bin/pip uninstall -y pip setuptools wheel \
 && find /opt/modelrollout -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="modelrollout" \
      org.opencontainers.image.description="Rolls out machine-learning models on evidence" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 modelrollout \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin modelrollout
COPY --from=build /opt/modelrollout /opt/modelrollout
ENV PATH=/opt/modelrollout/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MODELROLLOUT_METRICS_PORT=8080 \
    MODELROLLOUT_LIVENESS=http://0.0.0.0:8081/healthz
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["modelrollout-operator"]
