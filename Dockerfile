# One image for every service and the gateway; the Kubernetes manifests choose the entry point.
FROM python:3.11-slim AS build
WORKDIR /app
COPY requirements.txt requirements-dev.txt ./
RUN pip install --no-cache-dir -r requirements-dev.txt
COPY protos protos
COPY tools/gen_protos.py tools/gen_protos.py
COPY tools/__init__.py tools/__init__.py
RUN python tools/gen_protos.py

FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt && useradd --uid 10001 --no-create-home crm
COPY --from=build /app/gen gen
COPY chassis chassis
COPY services services
COPY gateway gateway
ENV PYTHONPATH=/app:/app/gen PYTHONDONTWRITEBYTECODE=1
USER 10001
