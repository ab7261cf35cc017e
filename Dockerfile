# One image for both SageMaker modes: `docker run IMAGE train` and `docker run IMAGE serve`.
# The packages are installed and trimmed in a first stage, and only the virtual environment is
# copied into the image, so pip, setuptools and the packages' test suites never reach it
# (docs/performance.md and bench/results/image*.json: what takes the space, and what this saves).
# A stage between them writes the image's SBOM, of which only the file reaches the image.

# The base of both stages. A build that cannot change under you pins it by digest:
# --build-arg BASE=debian:bookworm-slim@sha256:... (docs/deploying.md).
ARG BASE=debian:bookworm-slim

# -- build: the virtual environment, trimmed -------------------------------------------------
FROM ${BASE} AS venv

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# The SBOM generators (requirements-sbom.txt), in a virtual environment of their own that only the
# `sbom` stage below uses: none of it reaches the image.
COPY requirements-sbom.txt /tmp/requirements-sbom.txt
RUN python3 -m venv /opt/sbom-tools \
    && /opt/sbom-tools/bin/pip install --no-cache-dir --require-hashes --only-binary :all: \
        -r /tmp/requirements-sbom.txt

# Requirements before the code: a code change rebuilds in seconds. requirements.txt is the lock
# `make lock` writes from requirements.in: every package pinned with the hashes of its files, so
# pip refuses any file the index serves that is not one of them, and wheels only, so nothing is
# built (no setup.py runs) at install time.
COPY requirements.txt /tmp/requirements.txt
# Test suites shipped inside the packages (pandas/tests alone is 46 MB with its bytecode)
# are never imported by the server or by training; pip and setuptools are only needed here.
# Bytecode is compiled once, here: without it every start compiles the libraries again
# (PYTHONDONTWRITEBYTECODE below), several seconds on each start.
# pip's report names the wheel each package came from, with its SHA-256: the SBOM's hashes.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile --require-hashes --only-binary :all: \
        --report /opt/sbom-tools/pip-report.json -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && find /opt/venv/lib -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib

# pyarrow's wheel is 169 MB here and takes the image to 627 MB, past its 600 MB limit: 63 MB of it
# is never loaded by this project. Each part below is loaded only through the module removed with
# it, or only when C++ code is built against pyarrow: no library kept lists a removed one as
# NEEDED (readelf), and tests/container/test_image.py checks that with ldd in the image and runs
# every pyarrow module the project imports, with pandas and Dask. `rm` without -f: a pyarrow that
# renames these fails the build, so an upgrade revisits the trim.
# - Flight (RPC over gRPC, 33 MB): only `pyarrow.flight` loads it, and nothing imports that.
# - S3 (17 MB): only `pyarrow._s3fs` loads it; channels are local files under /opt/ml, and
#   pyarrow.fs then reports S3FileSystem as "not built" instead of failing to import.
# - Substrait's Python module (libarrow_substrait itself stays: every pyarrow module links it).
# - Headers, C++ and Cython sources, for building extensions against pyarrow (7.5 MB).
# - The copies of libarrow_python under its link-time names (5 MB; a wheel holds no symlinks):
#   the loader asks only for the .so.NNNN names. And pyarrow's C++ test module.
WORKDIR /opt/venv/lib/python3.11/site-packages/pyarrow
RUN rm libarrow_flight.so.* libarrow_python_flight.so* _flight.cpython-*.so \
       libarrow_s3.so.* _s3fs.cpython-*.so \
       _substrait.cpython-*.so \
       libarrow_python.so libarrow_python.so.*.*.* \
       libarrow_python_parquet_encryption.so libarrow_python_parquet_encryption.so.*.*.* \
       _pyarrow_cpp_tests.cpython-*.so \
    && rm -r include includes src \
    && find . \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -delete

# -- the image's packages ------------------------------------------------------------------------
FROM ${BASE} AS runtime

# Debian's Python and nginx (libgomp1: LightGBM's OpenMP), and the system packages a fork's
# libraries need, listed in system-packages.txt (one a line; # comments). Nothing is installed at
# start-up, so the image also runs without network access (VPC-only endpoints, network isolation).
COPY system-packages.txt /tmp/system-packages.txt
RUN sed -i 's/#.*//' /tmp/system-packages.txt \
    && apt-get update \
    && xargs --arg-file=/tmp/system-packages.txt \
       apt-get install -y --no-install-recommends python3 nginx ca-certificates libgomp1 \
    && rm -rf /var/lib/apt/lists/* /var/log/nginx/* /tmp/system-packages.txt

COPY --from=venv /opt/venv /opt/venv

ENV PATH="/opt/program:/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# -- build: the SBOM of exactly those packages ---------------------------------------------------
# CycloneDX JSON: every Python distribution in /opt/venv (cyclonedx-py) with the SHA-256 of the wheel
# pip installed, and every Debian package (distro2sbom); sbom/combine.py joins them (docs/deploying.md).
FROM runtime AS sbom
COPY --from=venv /opt/sbom-tools /opt/sbom-tools
COPY sbom/combine.py /opt/sbom-tools/
WORKDIR /opt/sbom
RUN /opt/sbom-tools/bin/cyclonedx-py environment --sv 1.6 -o /tmp/python.cdx.json /opt/venv \
    && /opt/sbom-tools/bin/distro2sbom --distro deb --system --sbom cyclonedx --format json \
        -o /tmp/debian.cdx.json \
    && /opt/sbom-tools/bin/python /opt/sbom-tools/combine.py /tmp/python.cdx.json /tmp/debian.cdx.json \
        /opt/sbom-tools/pip-report.json sagemaker-byo /opt/sbom/sbom.cdx.json

# -- the image ---------------------------------------------------------------------------------
FROM runtime
COPY --from=sbom /opt/sbom /opt/sbom

COPY algo /opt/program
RUN python -m compileall -q /opt/program
WORKDIR /opt/program

# serve listens on SAGEMAKER_BIND_TO_PORT when it is set (inference pipelines).
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
# Multi-model endpoints (SAGEMAKER_MULTI_MODEL=true): models loaded and unloaded through /models.
LABEL com.amazonaws.sagemaker.capabilities.multi-models=true

# No ENTRYPOINT: SageMaker's `train` or `serve` argument is the command, found on PATH, and it
# runs as PID 1 (as root, which SageMaker expects; any other user works too, also on a read-only
# root file system: docs/deploying.md), so it receives SIGTERM itself. Started with
# no command, `start` trains where a training job's /opt/ml/input/config is present and serves
# otherwise, and replaces itself with that program (see algo/start).
CMD ["start"]
