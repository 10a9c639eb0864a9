"""The job service's HTTP API (FastAPI). Never imports TensorFlow."""
