# The example app's base image for the kind workflow: what sandbox/sandbox.sh builds with mmdebstrap
# (python3 + alembic + psycopg2), made from the official python image where Docker Hub is reachable.
#   docker build -t app-base:kind - < tests/kind/app-base.Dockerfile
#   docker build -t app/api:ci --build-arg BASE_IMAGE=app-base:kind examples/app
FROM python:3.11-slim
RUN pip install --no-cache-dir alembic==1.20.1 psycopg2-binary==2.9.13
