"""`llmos serve`: an OpenAI-compatible HTTP server whose actions run inside the decode."""
