#!/usr/bin/env python3
"""Admin API timings with a large spool (default 1,000,000 messages).

Creates a spool with `stagecoach status` (so the schema is the real one),
fills it with N messages straight through SQLite in one transaction (the
state-count triggers run as for real inserts), starts `stagecoach run`
with the dashboard on a free loopback port, and times the requests the
overview and the search page make.  Medians of 20 requests each.

    scripts/bench-overview.py [--messages N] [--build DIR]
"""
import argparse
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("--messages", type=int, default=1_000_000)
parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
args = parser.parse_args()
binary = os.path.abspath(os.path.join(args.build, "stagecoach"))

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

work = tempfile.mkdtemp(prefix="sc-bench-overview-")
daemon = None
try:
    config = os.path.join(work, "stagecoach.conf")
    with open(config, "w") as f:
        f.write(f"[stagecoach]\nspool=spool\n[admin]\nlisten=127.0.0.1:{port}\n"
                "[list:a.example.org]\npipeline=decorate\n[list:b.example.org]\npipeline=decorate\n")
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    subprocess.run([binary, "status"], env=env, check=True, capture_output=True)
    db = sqlite3.connect(os.path.join(work, "spool", "spool.db"))
    now = int(time.time() * 1_000_000)
    t0 = time.monotonic()
    # done mostly, some dead/deferred/held; none due, so the runner stays idle
    db.execute("""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
        INSERT INTO messages (queue_id, list_id, sender, subject, message_id, pipeline, state,
                              created_at, updated_at, cycle_started_at, next_attempt_at, size,
                              last_error)
        SELECT printf('%016x', i), CASE i % 2 WHEN 0 THEN 'a.example.org' ELSE 'b.example.org' END,
               'owner@example.org', 'Subject number ' || i, '<m' || i || '@example.org>', 'decorate',
               CASE WHEN i % 100 = 0 THEN 'dead' WHEN i % 100 = 1 THEN 'deferred'
                    WHEN i % 100 = 2 THEN 'held' ELSE 'done' END,
               ? - i * 1000, ? - i * 1000, ? - i * 1000,
               CASE WHEN i % 100 = 1 THEN ? + 86400000000 ELSE NULL END, 1000,
               CASE WHEN i % 100 = 0 THEN '550 5.1.1 no such user' ELSE NULL END
        FROM n""", (args.messages, now, now, now, now))
    db.commit()
    db.close()
    fill = time.monotonic() - t0

    daemon = subprocess.Popen([binary, "run"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)

    def timed(path):
        times = []
        for _ in range(20):
            t = time.monotonic()
            with urllib.request.urlopen(base + path, timeout=60) as response:
                response.read()
            times.append((time.monotonic() - t) * 1000)
        return statistics.median(times)

    print(f"spool: {args.messages} messages (filled in {fill:.1f} s)")
    for path in ["/api/v1/status", "/api/v1/messages?limit=50",
                 "/api/v1/messages?state=dead&limit=50", "/api/v1/messages?list=a.example.org&limit=50",
                 "/api/v1/messages?state=dead&q=no%20such%20user&limit=50", "/api/v1/mailers",
                 "/metrics"]:
        print(f"GET {path}: median {timed(path):.1f} ms")
finally:
    if daemon is not None:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
