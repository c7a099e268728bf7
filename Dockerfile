# The API image that compose.yaml runs twice (README: "Running on several machines").
FROM python:3.11-slim
WORKDIR /app
# torch's CPU build: the default wheel pulls GBs of CUDA that a CPU replica never uses.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY recommender recommender
COPY index index
COPY service service
RUN pip install --no-cache-dir .
ENV HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false RECOMMENDER_DATA_DIR=/app/data
EXPOSE 8000
CMD ["recommender", "serve"]
