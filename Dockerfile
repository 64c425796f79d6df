# monitor: the service image. Two stages: `build` installs the package and its locked dependencies into a
# virtualenv; the runtime stage copies only that virtualenv onto a slim Python, and runs as a non-root user.
#   docker build -t monitor .          (see README: Deploy with docker-compose)

FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY monitor ./monitor
RUN python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --no-deps -r requirements.lock \
 && /venv/bin/pip install --no-cache-dir --no-deps . \
 && /venv/bin/pip check

FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /app --create-home monitor
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MONITOR_CONFIG_DIR=/config \
    MONITOR_METRICS_HOST=0.0.0.0 \
    MONITOR_METRICS_PORT=9464
USER monitor
WORKDIR /app
VOLUME ["/config"]
EXPOSE 9464
# Ready only when the scheduler runs and the database answers (monitor/metrics.py, /healthz).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['MONITOR_METRICS_PORT'], timeout=4).status == 200 else 1)"]
ENTRYPOINT ["monitor"]
CMD ["run"]
