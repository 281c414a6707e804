# Multi-stage build: dependencies are built in a full image, the runtime image is slim and non-root.
# Deploy: run `python -m service migrate` once (a job / init container), then start replicas of the
# default command. compose.yaml shows the same shape.
FROM python:3.11-slim AS build
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --home /app app
WORKDIR /app
COPY --from=build /venv /venv
COPY service ./service
COPY sql ./sql
COPY migrations ./migrations
COPY config ./config
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8080 ENVIRONMENT=production
USER app
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
CMD ["python", "-m", "service", "serve"]
