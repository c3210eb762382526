"""A PostgreSQL for a laptop: the embedded server and the dev commands' plumbing."""
