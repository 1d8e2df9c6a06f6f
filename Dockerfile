# wgbert serve in a container: Debian slim, Mesa's Vulkan drivers (lavapipe: the CPU fallback
# when no GPU is passed in) and the Vulkan loader, and a wgbert binary built on the host.
#
#   cargo build --release
#   podman build -t wgbert .          # or: docker build -t wgbert .
#   podman run --rm -p 8080:8080 -v /path/to/model:/model:ro -e WGBERT_MODEL=/model wgbert
#
# GPUs (README, "Deployment"): with the NVIDIA container toolkit, `--gpus all` (docker) or
# `--device nvidia.com/gpu=all` (podman, CDI) mounts the driver's Vulkan ICD, which needs the
# `graphics` capability set below. AMD and Intel: pass /dev/dri in (`--device /dev/dri`).
# The binary links glibc dynamically: build it on Debian 12 (or older) for this base.
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends mesa-vulkan-drivers libvulkan1 ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ARG BINARY=target/release/wgbert
COPY ${BINARY} /usr/local/bin/wgbert

# NVIDIA container toolkit: which GPUs, and the driver parts to mount (graphics brings the
# Vulkan ICD, compute and utility the rest).
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,graphics,utility \
    HF_HOME=/data \
    XDG_RUNTIME_DIR=/tmp
VOLUME /data

EXPOSE 8080
# The model: WGBERT_MODEL (a directory mounted in, or a hub id fetched into /data).
ENTRYPOINT ["wgbert"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
