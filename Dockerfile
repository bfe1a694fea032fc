# recsvc image. Build: podman build -t recsvc . (or docker build)
# A site with its own registry mirror: --build-arg BASE_IMAGE=mirror.example/python:3.11-slim
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY recsvc ./recsvc
COPY training ./training
RUN python -m pip install --no-cache-dir --upgrade pip \
    && python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${BASE_IMAGE}
# implicit's ALS and item-kNN need the OpenMP runtime, which slim images lack.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /var/lib/recsvc --create-home recsvc
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER recsvc
WORKDIR /var/lib/recsvc
# The scoring kernels are compiled once, here, into numba's cache (a few tens of
# seconds), rather than at each container's first start.
ENV NUMBA_CACHE_DIR=/var/lib/recsvc/.cache/numba
RUN python -c "from recsvc.core.ranking.warmup import warm_up; warm_up()"
# Models and the service's state (events log, catalog overrides) live on volumes so that
# a new image never loses them. All configuration comes from RECSVC_* variables.
VOLUME ["/var/lib/recsvc/models", "/var/lib/recsvc/state"]
ENV RECSVC_MODEL_ROOT=/var/lib/recsvc/models \
    RECSVC_STATE_DIR=/var/lib/recsvc/state \
    RECSVC_HOST=0.0.0.0 \
    RECSVC_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RECSVC_PORT', '8000'), timeout=2)"
ENTRYPOINT ["recsvc"]
CMD ["serve"]
