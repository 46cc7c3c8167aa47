# geoingest in a container.
#
#   docker build -t geoingest .
#   docker run -d --name geoingest -p 9611:9611 --stop-timeout 45 \
#       -v /srv/geoingest/drop:/data/drop -v /srv/geoingest/out:/data/out \
#       -v geoingest-state:/data/state geoingest
#
# The daemon runs as PID 1 without an init. The kernel ignores a signal that
# PID 1 has no handler for, and the daemon installs its own for SIGTERM and
# SIGINT; the exec-form ENTRYPOINT below hands it `docker stop`'s SIGTERM with
# no shell in between to swallow it. Its child processes (the worker pool's
# forkserver and workers) are reaped by their own parents.

# Build stage: install geoingest into a virtual environment with the README's
# install command, so the image and a host install are made the same way.
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A C compiler builds the compiled coordinate pass; only the built venv reaches
# the final stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY daemon/ daemon/
RUN python3 -m venv /opt/geoingest && /opt/geoingest/bin/pip install .

# Final stage: the same base, so the venv's interpreter links still resolve,
# with nothing of the build but the venv.
FROM python:3.11-slim

RUN groupadd --system --gid 10001 geoingest \
    && useradd --system --uid 10001 --gid geoingest --no-create-home \
        --home-dir /data/state --shell /usr/sbin/nologin geoingest \
    && install -d -o geoingest -g geoingest -m 0750 /data/drop /data/out /data/state

COPY --from=build /opt/geoingest /opt/geoingest

# The metrics server listens on every interface inside the container, so that
# a published port reaches it; the folders are the three volumes below.
# PYTHONFAULTHANDLER dumps every thread's stack if the process is killed hung.
ENV PATH=/opt/geoingest/bin:$PATH \
    PYTHONFAULTHANDLER=1 \
    PYTHONUNBUFFERED=1 \
    GEOINGEST_INPUT=/data/drop \
    GEOINGEST_OUTPUT=/data/out \
    GEOINGEST_STATE_DIR=/data/state \
    GEOINGEST_METRICS_ADDRESS=0.0.0.0:9611

VOLUME ["/data/drop", "/data/out", "/data/state"]
EXPOSE 9611

# A numeric user, so that orchestrators can check it is not root without
# looking the name up.
USER 10001:10001

# slim has no curl: ask /healthz with the standard library, on the port that
# GEOINGEST_METRICS_ADDRESS names, past any proxy the environment sets. Any
# status but 2xx raises, and the check fails.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request as u; port = os.environ.get('GEOINGEST_METRICS_ADDRESS', ':9611').rpartition(':')[2]; u.build_opener(u.ProxyHandler({})).open(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

# SIGTERM starts the drain: stop intake, finish files in flight, commit the
# last batch, exit 0. The drain may take drain_timeout_s (30 s), longer than
# docker stop's default 10 s grace: run with --stop-timeout 45 or set
# stop_grace_period in compose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/geoingest/bin/geoingest"]
CMD ["run"]
