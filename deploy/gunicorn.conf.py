"""Production gunicorn settings for feedsvc: `gunicorn -c deploy/gunicorn.conf.py wsgi:app`."""
import multiprocessing
import os

bind = os.environ.get("FEEDSVC_BIND", "127.0.0.1:8000")
# Sync workers, one per core: a request is short and CPU-bound (a cached feed is sent from
# memory), so a worker per core keeps the cores busy and more workers only cost memory.
# Measured on a 2-core box, wrk -c32 on loopback, cached /feeds/all.rss, 1,000 releases, two
# rounds of 5 s on a busy machine (req/s, p99):
#   sync 2 workers      1,195 / 1,595 req/s   p99 100 / 52 ms
#   sync 3 workers      1,576 / 1,324         p99 102 / 64
#   sync 4 workers      1,191 / 1,627         p99  85 / 100
#   gthread 2x2 threads 1,449 / 2,136         p99 166 / 230
#   gthread 2x4 threads 2,067 / 1,787         p99 136 / 162
# gthread wins some req/s only by keeping wrk's connections alive, and pins each connection
# to one worker: p99 is 1.5-4x worse (as measured before, gevent likewise). Sync workers close
# every connection; behind nginx that costs a loopback connect per request that nginx's
# micro-cache did not answer.
worker_class = "sync"
workers = int(os.environ.get("FEEDSVC_WORKERS", multiprocessing.cpu_count()))
# Load the dataset once in the master; workers share its memory copy-on-write.
preload_app = True
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 0
