# recsvc images. Two targets from one build:
#   podman build -t recsvc .                                  the service (default, last stage)
#   podman build --target trainer -t recsvc-trainer .         the nightly job: train + serve
# (or docker build). The service image holds only what serving needs (no implicit,
# pandas, scikit-learn, matplotlib): `pip install recsvc`. The trainer adds the [train]
# extra, so it runs `recsvc retrain` (and can warm the cache and serve too).
# A site with its own registry mirror: --build-arg BASE_IMAGE=mirror.example/python:3.11-slim
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY recsvc ./recsvc
COPY training ./training
# Every wheel either image needs; each installs its own subset from here, offline.
RUN python -m pip install --no-cache-dir --upgrade pip \
    && python -m pip wheel --no-cache-dir --wheel-dir /wheels '.[train]'

FROM ${BASE_IMAGE} AS runtime
RUN useradd --system --uid 10001 --home-dir /var/lib/recsvc --create-home recsvc
# Models and the service's state (events log, catalog overrides) live on volumes so that
# a new image never loses them. All configuration comes from RECSVC_* variables.
ENV NUMBA_CACHE_DIR=/var/lib/recsvc/.cache/numba \
    RECSVC_MODEL_ROOT=/var/lib/recsvc/models \
    RECSVC_STATE_DIR=/var/lib/recsvc/state \
    RECSVC_HOST=0.0.0.0 \
    RECSVC_PORT=8000
WORKDIR /var/lib/recsvc
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RECSVC_PORT', '8000'), timeout=2)"
ENTRYPOINT ["recsvc"]
CMD ["serve"]

FROM runtime AS trainer
# implicit's ALS and item-kNN need the OpenMP runtime, which slim images lack.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
# The wheels are mounted, not copied: a copied layer would stay in the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links /wheels 'recsvc[train]'
USER recsvc
# The scoring kernels are compiled once, here, into numba's cache (a few tens of
# seconds), rather than at each container's first start.
RUN python -c "from recsvc.core.ranking.warmup import warm_up; warm_up()"
VOLUME ["/var/lib/recsvc/models", "/var/lib/recsvc/state"]

FROM runtime AS serve
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links /wheels recsvc
USER recsvc
RUN python -c "from recsvc.core.ranking.warmup import warm_up; warm_up()"
VOLUME ["/var/lib/recsvc/models", "/var/lib/recsvc/state"]
