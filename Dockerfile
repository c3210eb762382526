# The image the Kubernetes Jobs run (deploy/kubernetes/): the tool, pinned, and the repository's
# migrations/. A team copies it as it is (or adds the RUN line to its product's own Dockerfile):
#   docker build -t grapevine-migrations:0.1.0 .
# GRAPEVINE_ALEMBIC is anything pip installs: the release (default) or a wheel's URL, e.g.
#   --build-arg GRAPEVINE_ALEMBIC="grapevine-alembic @ https://example.com/grapevine_alembic-0.1.0-py3-none-any.whl"
FROM python:3.11-slim

ARG GRAPEVINE_ALEMBIC=grapevine-alembic==0.1.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The tool first, so a new migration file does not re-install it.
RUN pip install --no-cache-dir "$GRAPEVINE_ALEMBIC"

# Without alembic.ini the CLI reads ./migrations/control and ./migrations/tenant; a repository
# that keeps settings in alembic.ini (tenants query, server logins) copies it too.
WORKDIR /app
COPY migrations ./migrations

USER 65532:65532
CMD ["grapevine-migrations", "--help"]
