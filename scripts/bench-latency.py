#!/usr/bin/env python3
"""Inject-to-done latency of an idle daemon (decorate;archive pipeline).

Starts `stagecoach run` on a fresh spool, injects messages one at a time
(with a pause, so the daemon is idle and asleep when each arrives), and
reads from the spool when each message's last stage completed.  Latency is
that time minus the wall-clock time just before `inject` was started, so it
includes the inject process itself, its durable commit, the wakeup, both
stages and their commits.

    scripts/bench-latency.py [--messages N] [--build DIR]
"""
import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--messages", type=int, default=100)
parser.add_argument("--pause", type=float, default=0.05, help="seconds between injects")
parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
args = parser.parse_args()

binary = os.path.abspath(os.path.join(args.build, "stagecoach"))
work = tempfile.mkdtemp(prefix="sc-bench-latency-")
try:
    with open(os.path.join(work, "footer.txt"), "w") as f:
        f.write("-- \nposted to $list_name\n")
    config = os.path.join(work, "stagecoach.conf")
    with open(config, "w") as f:
        f.write("[stagecoach]\nspool=spool\nworkers=2\n"
                "[list:bench.example.org]\npipeline=decorate;archive\n"
                "subject-prefix=[bench]\nfooter=footer.txt\narchive=maildir:archive\n")
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    daemon = subprocess.Popen([binary, "run"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    body = ("From: a@example.org\r\nTo: bench@example.org\r\nSubject: latency\r\n\r\n"
            + "line of text\r\n" * 200).encode()
    started = {}
    for _ in range(args.messages):
        t0 = time.time_ns() // 1000
        queue_id = subprocess.run([binary, "inject", "--list", "bench.example.org",
                                   "r@example.net"], input=body, env=env, check=True,
                                  capture_output=True).stdout.decode().strip()
        started[queue_id] = t0
        time.sleep(args.pause)
    deadline = time.time() + 30
    db = sqlite3.connect(os.path.join(work, "spool", "spool.db"))
    while time.time() < deadline:
        (done,) = db.execute("SELECT count(*) FROM messages WHERE state='done'").fetchone()
        if done == args.messages:
            break
        time.sleep(0.1)
    rows = db.execute("SELECT m.queue_id, max(s.completed_at), m.created_at FROM messages m "
                      "JOIN stages s ON s.message_id = m.id GROUP BY m.id").fetchall()
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)
    latencies = sorted((completed - started[qid]) / 1000.0 for qid, completed, _ in rows)
    # from the inject's commit (created_at is taken just before it) to done
    in_daemon = sorted((completed - created) / 1000.0 for _, completed, created in rows)
    in_inject = sorted((created - started[qid]) / 1000.0 for qid, _, created in rows)
    if len(latencies) != args.messages:
        print(f"only {len(latencies)} of {args.messages} messages finished", file=sys.stderr)
        sys.exit(1)
    q = statistics.quantiles(latencies, n=10)
    print(f"messages: {len(latencies)}")
    print(f"inject-to-done median: {statistics.median(latencies):.1f} ms")
    print(f"inject-to-done p90:    {q[8]:.1f} ms")
    print(f"inject-to-done max:    {latencies[-1]:.1f} ms")
    print(f"  of which inject process start to commit, median: {statistics.median(in_inject):.1f} ms")
    print(f"  of which commit to done (wakeup, 2 stages, 2 group commits), median: "
          f"{statistics.median(in_daemon):.1f} ms")
finally:
    shutil.rmtree(work, ignore_errors=True)
