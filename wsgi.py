"""WSGI entry point: `gunicorn wsgi:app`."""

import gc

from eventapp import create_app

app = create_app()
# Everything loaded so far (modules, templates, the app) lives as long as the worker: moved out of
# the collector's sight, a full collection scans only what requests create. Without this, a worker
# paused about 130 ms for each full collection, twice per thousand sign-ups (benchmarks/signup_race.py).
gc.freeze()
