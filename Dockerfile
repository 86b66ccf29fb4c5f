FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schema ./schema
COPY producers ./producers
COPY workers ./workers
COPY simulator ./simulator
COPY genq ./genq
RUN pip install . && useradd --create-home --uid 10001 genq && mkdir /app/var && chown genq /app/var
USER genq
EXPOSE 8000
CMD ["genq", "api", "--host", "0.0.0.0", "--port", "8000"]
