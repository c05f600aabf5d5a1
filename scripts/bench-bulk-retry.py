#!/usr/bin/env python3
"""Bulk retry of a large filter while the daemon keeps serving (issue 7, defect 16).

Fills a spool with N dead messages (default 300,000) straight through SQLite,
starts `stagecoach run` with the dashboard on a free loopback port, POSTs
/api/v1/retry {"state":"dead"} and, while it runs, times /healthz every 20 ms
and injects a message every 200 ms.  Prints the bulk retry's duration, the
slowest and median /healthz answers, and how many injects were accepted.
The retried messages belong to a list the configuration no longer has, so
once due they fail at once (transient, deferred an hour): cheap work for
the runner, which keeps claiming them while the retry runs.

    scripts/bench-bulk-retry.py [--messages N] [--build DIR]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("--messages", type=int, default=300_000)
parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
args = parser.parse_args()
binary = os.path.abspath(os.path.join(args.build, "stagecoach"))

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

work = tempfile.mkdtemp(prefix="sc-bench-bulk-")
daemon = None
try:
    config = os.path.join(work, "stagecoach.conf")
    with open(config, "w") as f:
        f.write(f"[stagecoach]\nspool=spool\nworkers=1\n[admin]\nlisten=127.0.0.1:{port}\n"
                "[retry]\ninitial=1h\nmax-delay=1h\n"
                "[list:b.example.org]\npipeline=decorate\n")
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    subprocess.run([binary, "status"], env=env, check=True, capture_output=True)
    db = sqlite3.connect(os.path.join(work, "spool", "spool.db"))
    now = int(time.time() * 1_000_000)
    db.execute("""
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
        INSERT INTO messages (queue_id, list_id, sender, subject, message_id, pipeline, state,
                              created_at, updated_at, cycle_started_at, next_attempt_at, size,
                              last_error)
        SELECT printf('%016x', i), 'a.example.org', 'owner@example.org', 'Subject ' || i,
               '<m' || i || '@example.org>', 'decorate', 'dead', ? - i, ? - i, ? - i, NULL, 100,
               '550 5.1.1 no such user'
        FROM n""", (args.messages, now, now, now))
    db.execute("INSERT INTO bodies (message_id, raw) SELECT id, 'Subject: x\r\n\r\nx\r\n' FROM messages")
    db.commit()
    db.close()
    daemon = subprocess.Popen([binary, "run"], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    token_url = None
    for _ in range(100):
        r = subprocess.run([binary, "admin-url"], env=env, capture_output=True, text=True)
        if r.returncode == 0:
            token_url = r.stdout.strip()
            break
        time.sleep(0.1)
    token = token_url.split("#token=", 1)[1]
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)

    done = threading.Event()
    latencies = []
    injects = {"ok": 0, "failed": 0}

    def poll():
        while not done.is_set():
            t = time.monotonic()
            urllib.request.urlopen(base + "/healthz", timeout=60).read()
            latencies.append(time.monotonic() - t)
            time.sleep(0.02)

    def inject():
        while not done.is_set():
            r = subprocess.run([binary, "inject", "--list", "b.example.org", "x@example.org"],
                               env=env, input=b"Subject: during\n\nx\n", capture_output=True)
            injects["ok" if r.returncode == 0 else "failed"] += 1
            time.sleep(0.2)

    threads = [threading.Thread(target=poll), threading.Thread(target=inject)]
    for t in threads:
        t.start()
    request = urllib.request.Request(base + "/api/v1/retry", data=json.dumps({"state": "dead"}).encode(),
                                     headers={"Authorization": "Bearer " + token,
                                              "Content-Type": "application/json"}, method="POST")
    t0 = time.monotonic()
    answer = json.loads(urllib.request.urlopen(request, timeout=600).read())
    duration = time.monotonic() - t0
    done.set()
    for t in threads:
        t.join()
    print(f"bulk retry of {args.messages:,} dead messages: {duration:.1f} s, answer {answer}")
    print(f"/healthz during it: {len(latencies)} requests, median {statistics.median(latencies) * 1000:.1f} ms,"
          f" slowest {max(latencies) * 1000:.1f} ms")
    print(f"inject during it: {injects['ok']} accepted, {injects['failed']} failed")
finally:
    if daemon is not None:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait()
    shutil.rmtree(work, ignore_errors=True)
