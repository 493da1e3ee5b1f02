FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# gcc compiles the flag evaluator (setup.py); without it the image still works, on the source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# Editable, so the compiled evaluator lands beside its source in /app/flags, which is what
# gunicorn and celery import from this working directory.
RUN pip install --no-cache-dir -e . \
    && python -c "import flags.evaluation as e; print('flag evaluation:', e.IMPLEMENTATION)"
RUN useradd --system --home /app app && mkdir -p /tmp/metrics && chown app /tmp/metrics
USER app
