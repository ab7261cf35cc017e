# One image for both SageMaker modes: `docker run IMAGE train` and `docker run IMAGE serve`.
FROM debian:bookworm-slim

# Debian's Python and nginx; nothing is installed at start-up, so the image also runs without
# network access (VPC-only endpoints, network isolation).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv nginx ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/log/nginx/* \
    && python3 -m venv /opt/venv

ENV PATH="/opt/program:/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Requirements before the code: a code change rebuilds in seconds.
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --no-compile -r /tmp/requirements.txt \
    && python -m compileall -q /opt/venv/lib \
    && rm /tmp/requirements.txt

COPY algo /opt/program
RUN python -m compileall -q /opt/program
WORKDIR /opt/program

# serve listens on SAGEMAKER_BIND_TO_PORT when it is set (inference pipelines).
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
# Multi-model endpoints (SAGEMAKER_MULTI_MODEL=true): models loaded and unloaded through /models.
LABEL com.amazonaws.sagemaker.capabilities.multi-models=true

# No ENTRYPOINT: SageMaker's `train` or `serve` argument is the command, found on PATH, and it
# runs as PID 1 (as root, which SageMaker expects), so it receives SIGTERM itself. Started with
# no command, `start` trains where a training job's /opt/ml/input/config is present and serves
# otherwise, and replaces itself with that program (see algo/start).
CMD ["start"]
