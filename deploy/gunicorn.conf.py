"""Production gunicorn settings for feedsvc: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`."""
import multiprocessing
import os

from gunicorn.http import wsgi as _gunicorn_wsgi

# Responses say "Server: feedsvc": which server (and version) runs the service is nobody's business.
_gunicorn_wsgi.SERVER = "feedsvc"

bind = os.environ.get("FEEDSVC_BIND", "127.0.0.1:8000")
# Sync workers: each request is short and CPU-bound; measured faster than gthread/gevent here.
worker_class = "sync"
workers = int(os.environ.get("FEEDSVC_WORKERS", multiprocessing.cpu_count()))
# Load the dataset once in the master; workers share its memory copy-on-write.
preload_app = True
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 0
