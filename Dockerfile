FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rollout_control ./rollout_control
COPY flags ./flags
COPY monitoring ./monitoring
COPY phases ./phases
COPY feedback ./feedback
RUN pip install --no-cache-dir .
COPY . .
RUN useradd --system --home /app app && mkdir -p /tmp/metrics && chown app /tmp/metrics
USER app
