# The image the Kubernetes Jobs run (deploy/kubernetes/): the CLI and this project's migrations.
#   docker build -t grapevine-migrations:0.1.0 .
FROM python:3.11-slim

ENV CI=true \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The package first, so a new migration file does not re-install the dependencies.
COPY pyproject.toml README.md ./
COPY grapevine_alembic ./grapevine_alembic
RUN pip install --no-cache-dir .

# alembic.ini in the working directory: the CLI finds it there.
COPY alembic.ini ./
COPY alembic_control ./alembic_control
COPY alembic_tenant ./alembic_tenant
COPY migrations ./migrations

USER 65532:65532
CMD ["grapevine-migrations", "--help"]
