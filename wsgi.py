"""WSGI entry point: `gunicorn wsgi:app`. Refuses to start on an invalid dataset (one line on
stderr, exit status 4: see create_app)."""
from feedsvc import create_app

app = create_app()
