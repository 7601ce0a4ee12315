"""gunicorn settings, every one from the environment (defaults suit one small machine)."""

import os

# Where to listen. Keep loopback unless a TLS proxy sits in front (see README: ProxyFix).
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Worker processes; each holds its own key cache and verified-token cache.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# "sync" (default) or "gthread" (then GUNICORN_THREADS threads per worker).
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Seconds before a silent worker is killed and restarted.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Seconds to keep an idle client connection open (behind a proxy, above the proxy's value).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Access log: "-" for stderr, empty to disable. The format logs the path only, never the query
# string, so nothing sent in a query (even a misplaced token) reaches the log.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Restart workers after this many requests (0 = never) to bound any slow leak.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
# Load the app in the master before forking (off: each worker opens its own DB pool).
preload_app = os.environ.get("GUNICORN_PRELOAD", "0") == "1"

# Prometheus multiprocess mode: each worker writes its numbers to files in this directory and
# /metrics adds them up. It must be set before a worker imports prometheus_client, hence here.
# Default instance/prometheus (one gunicorn per directory: two servers sharing it would mix up,
# and wipe, each other's numbers).
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "instance", "prometheus")
)
# Created now: with preload_app the app (and its metrics) load before on_starting runs.
os.makedirs(_metrics_dir, exist_ok=True)


def on_starting(server):  # noqa: ARG001 - gunicorn hook signature
    """Start every run with empty counters: files of dead processes from the last run are stale
    (and with preload_app, the master's own, which serves no request)."""
    for name in os.listdir(_metrics_dir):
        if name.endswith(".db"):
            os.remove(os.path.join(_metrics_dir, name))


def child_exit(server, worker):  # noqa: ARG001 - gunicorn hook signature
    """Drop a dead worker's live gauges (counters and histograms keep its totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):  # noqa: ARG001 - gunicorn hook signature
    """Move everything the app built at start-up (modules, plugins, keys, compiled queries:
    ~84,000 objects) out of the cyclic garbage collector's sight. Full collections then scan
    only what requests create: before, each one walked the whole start-up heap (a ~45 ms pause
    every few thousand requests, ~4 us a request on average). Nothing is kept longer: these
    objects live as long as the worker anyway."""
    import gc

    gc.freeze()
