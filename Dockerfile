# Multi-stage build: dependencies from the hashed lock, then the service's wheel; the runtime image has
# the virtualenv only (no pgserver, no test tools, no compilers) and runs as a numeric non-root user.
# Deploy: run `python -m service migrate` once as the owner role (a job / init container), then start
# replicas of the default command as the app role. compose.yaml shows the same shape.
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when requirements.lock changes.
COPY requirements.lock ./
RUN python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
# Then the code. The wheel bundles sql/, migrations/ and config/ (setup.py); dependencies are already in.
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY service ./service
COPY sql ./sql
COPY migrations ./migrations
COPY config ./config
RUN /venv/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim AS runtime
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8080 ENVIRONMENT=production
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd entry.
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["python", "-m", "service", "serve"]
