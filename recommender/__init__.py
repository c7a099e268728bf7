"""Related-article recommender: the domain (articles, store, embedding, ranking, evaluation)."""
