"""Examples that use the toolkit (importable so gunicorn and ``flask --app`` find them)."""
