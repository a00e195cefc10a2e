"""Entry point for gunicorn and ``flask --app wsgi``: ``gunicorn wsgi:app``."""

from booking import create_app

app = create_app()
