# syntax=docker/dockerfile:1
#
# One image for the shop API, the worker and the migrations:
#   docker run IMAGE                                   -> shop api --host 0.0.0.0 --port 8000
#   docker run IMAGE worker                            -> shop worker
#   docker run IMAGE db upgrade                        -> shop db upgrade (exits)
#
# The uv binary comes from Astral's image, pinned to the uv release that wrote uv.lock
# (lock revision 5). The Python base is pinned to a patch release of 3.11 (.python-version).
# For reproducible production builds, also pin both by digest (FROM image:tag@sha256:...).

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# ------------------------------------------------------------------------------- builder
FROM python:3.11.17-slim-bookworm AS builder

COPY --from=uv /uv /uvx /usr/local/bin/

# copy: the cache is a mount, hard links into it would dangle.
# PYTHON_DOWNLOADS=0: build against the base image's interpreter, which the runtime stage
# has at the same path, so the venv's python symlink stays valid there.
ENV UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=0 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first: this layer is rebuilt only when a pyproject or the lock changes.
COPY pyproject.toml uv.lock .python-version ./
COPY platform/kernel/pyproject.toml platform/kernel/
COPY platform/app/pyproject.toml platform/app/
COPY platform/devkit/pyproject.toml platform/devkit/
COPY contexts/users/pyproject.toml contexts/users/
COPY contexts/catalog/pyproject.toml contexts/catalog/
COPY contexts/orders/pyproject.toml contexts/orders/
COPY contexts/notifications/pyproject.toml contexts/notifications/
COPY contexts/users/contract/pyproject.toml contexts/users/contract/
COPY contexts/catalog/contract/pyproject.toml contexts/catalog/contract/
COPY contexts/orders/contract/pyproject.toml contexts/orders/contract/
COPY contexts/notifications/contract/pyproject.toml contexts/notifications/contract/
# --no-dev also leaves out shop-devkit (embedded servers, pytest plugins): only the dev groups
# name it, so the image cannot run `shop dev` and carries no test code.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --compile-bytecode --no-install-workspace

# Then the workspace packages themselves, installed as wheels (not editable) so that the
# runtime stage needs nothing but the virtual environment.
COPY platform/ platform/
COPY contexts/ contexts/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --compile-bytecode

# ------------------------------------------------------------------------------- runtime
FROM python:3.11.17-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="shop" \
      org.opencontainers.image.description="Shop back end: HTTP API, worker and migrations"

# SHOP_DATA_DIR: where a process keeps what it must share with its siblings (the generated
# JWT key when SHOP_JWT_SECRET is unset); mount a volume there. /app is not writable.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHOP_DATA_DIR=/var/lib/shop

RUN groupadd --system --gid 10001 shop \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin shop \
    && install --directory --owner=10001 --group=10001 --mode=0750 /var/lib/shop

COPY --from=builder /app/.venv /app/.venv

WORKDIR /app
USER 10001:10001

EXPOSE 8000

# The API's liveness; compose and Kubernetes override it for the worker. No curl in slim
# images, so the stdlib does the GET (without proxies); any non-2xx answer raises -> exit 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.build_opener(r.ProxyHandler({})).open('http://127.0.0.1:8000/health/live', timeout=4)"]

ENTRYPOINT ["shop"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
