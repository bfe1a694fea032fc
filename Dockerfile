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
RUN useradd --system --uid 10001 --home-dir /var/lib/recsvc --create-home recsvc
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER recsvc
WORKDIR /var/lib/recsvc
# Models live on a volume so that a new image never loses them.
VOLUME ["/var/lib/recsvc/models"]
ENV RECSVC_MODEL_ROOT=/var/lib/recsvc/models
ENTRYPOINT ["recsvc"]
CMD ["--help"]
