"""The HTTP face of the recommender: FastAPI routes that translate requests into calls on ``Recommender``."""
