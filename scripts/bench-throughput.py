#!/usr/bin/env python3
"""Throughput of the runner on a backlog (decorate;archive pipeline).

Injects N messages with the real `stagecoach inject` (several at a time),
then times `stagecoach run --once` draining them, and reports messages per
second for both and the SQLite single-row-commit rate measured in the same
run on the same disk, for scale (the runner group-commits stage results).

    scripts/bench-throughput.py [--messages N] [--workers W] [--build DIR]
"""
import argparse
import concurrent.futures
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--messages", type=int, default=2000)
parser.add_argument("--workers", type=int, default=4)
parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
args = parser.parse_args()

binary = os.path.abspath(os.path.join(args.build, "stagecoach"))
work = tempfile.mkdtemp(prefix="sc-bench-throughput-")
try:
    with open(os.path.join(work, "footer.txt"), "w") as f:
        f.write("-- \nposted to $list_name\n")
    config = os.path.join(work, "stagecoach.conf")
    with open(config, "w") as f:
        f.write(f"[stagecoach]\nspool=spool\nworkers={args.workers}\n"
                "[list:bench.example.org]\npipeline=decorate;archive\n"
                "subject-prefix=[bench]\nfooter=footer.txt\narchive=maildir:archive\n")
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    body = ("From: a@example.org\r\nTo: bench@example.org\r\nSubject: throughput\r\n\r\n"
            + "line of text, about four kilobytes in all\r\n" * 95).encode()

    def inject(_):
        subprocess.run([binary, "inject", "--list", "bench.example.org", "r@example.net"],
                       input=body, env=env, check=True, capture_output=True)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(inject, range(args.messages)))
    inject_seconds = time.monotonic() - t0

    t0 = time.monotonic()
    subprocess.run([binary, "run", "--once"], env=env, check=True, capture_output=True)
    run_seconds = time.monotonic() - t0
    db = sqlite3.connect(os.path.join(work, "spool", "spool.db"))
    (done,) = db.execute("SELECT count(*) FROM messages WHERE state='done'").fetchone()
    db.close()

    # SQLite WAL synchronous=FULL single-row commits on the same disk
    probe = sqlite3.connect(os.path.join(work, "probe.db"), isolation_level=None)
    probe.execute("PRAGMA journal_mode=WAL")
    probe.execute("PRAGMA synchronous=FULL")
    probe.execute("CREATE TABLE t (v BLOB)")
    t0 = time.monotonic()
    for _ in range(2000):
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("INSERT INTO t VALUES (zeroblob(64))")
        probe.execute("COMMIT")
    commit_rate = 2000 / (time.monotonic() - t0)

    print(f"messages: {args.messages} (done: {done}), 4 KiB each, runner workers: {args.workers}")
    print(f"inject (separate process each, 4 at a time): {args.messages / inject_seconds:.0f} msgs/s")
    print(f"run --once, decorate;archive (Maildir, fsync): {done / run_seconds:.0f} msgs/s"
          f" ({run_seconds:.2f} s)")
    print(f"SQLite single-row durable commits on this disk: {commit_rate:.0f} commits/s"
          f" (one commit per stage would cap the runner near {commit_rate / 2:.0f} msgs/s)")
finally:
    shutil.rmtree(work, ignore_errors=True)
