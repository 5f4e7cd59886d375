# rami: one image for the coordinator and the workers (docs/deploy.md).
#   docker build -t rami:latest .
#   docker build --build-arg CUDA_ARCHS="80;90a" -t rami:latest .   # A100 + H100
#   docker run --rm --gpus all -v /models:/models -p 50051:50051 rami:latest \
#     node --model /models/Qwen3-8B-DMS --gpus 8 --tp 8 --host 0.0.0.0
# The entrypoint takes `coordinator ARGS`, `worker ARGS` or `node ARGS` (deploy/launch-node.sh).
ARG CUDA_VERSION=13.0.1
ARG UBUNTU=ubuntu24.04

# --- build: the same packages as deploy/setup.sh, Release, CUDA kernels for CUDA_ARCHS -----
FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
ARG CUDA_ARCHS=90a
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
# setup.sh --deps installs the Debian/Ubuntu packages (apt), not the CI-only tools.
RUN RAMI_DEPLOY_TOOLS=0 deploy/setup.sh --deps \
    && rm -rf /var/lib/apt/lists/*
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS}" \
    && cmake --build /build --target rami-worker rami-coordinator rami \
    && mkdir -p /opt/rami/bin /opt/rami/lib \
    && cp /build/worker/service/rami-worker /build/coordinator/rami-coordinator \
          /build/tools/rami /opt/rami/bin/ \
    && cp deploy/launch-node.sh deploy/grpc_health.py deploy/entrypoint.sh /opt/rami/bin/
# The shared libraries the binaries need (gRPC, protobuf, Abseil, Gloo, OpenBLAS, PCRE2, ...),
# found by ldd; glibc, libstdc++ and the CUDA libraries come with the runtime image.
RUN ldd /opt/rami/bin/rami-worker /opt/rami/bin/rami-coordinator /opt/rami/bin/rami \
    | awk '/=> \// { print $3 }' | sort -u \
    | grep -vE '/(ld-linux|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' \
    | grep -vE '/lib(cudart|cublas|cublasLt|nccl|cuda)\.so' \
    | xargs -I{} cp -L {} /opt/rami/lib/

# --- runtime: the CUDA runtime image (cudart, cuBLAS, NCCL) + rami, as a non-root user -----
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /opt/rami /opt/rami
ENV PATH=/opt/rami/bin:$PATH \
    LD_LIBRARY_PATH=/opt/rami/lib \
    RAMI_BUILD_DIR=/opt/rami/bin \
    NCCL_DEBUG=WARN
# Fail the image build here, not at run time, if a library is missing.
RUN ! ldd /opt/rami/bin/rami-worker /opt/rami/bin/rami-coordinator /opt/rami/bin/rami \
      | grep "not found" \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp rami
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051
ENTRYPOINT ["/opt/rami/bin/entrypoint.sh"]
CMD ["--help"]
