#!/usr/bin/env python3
"""Delivery throughput into smtp-sink, and how many SMTP connections it took.

Injects N messages (4 KiB, one recipient each, like the Postfix anchor in
../shared/BENCHMARKS.md) for a decorate;deliver list whose one mailer is a
local smtp-sink, then times `stagecoach run --once` draining them.  Prints
messages per second, the connections stagecoach opened (its own count,
logged at exit) and the sessions smtp-sink saw, and smtp-source's rate
straight into the same sink measured in the same run, for the ratio.

    scripts/bench-deliver.py [--messages N] [--workers W] [--build DIR]
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--messages", type=int, default=1000)
parser.add_argument("--workers", type=int, default=8)
parser.add_argument("--connections", type=int, default=4)
parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
args = parser.parse_args()

binary = os.path.abspath(os.path.join(args.build, "stagecoach"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


work = tempfile.mkdtemp(prefix="sc-bench-deliver-")
sink = None
try:
    port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{port}", "256"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    with open(os.path.join(work, "footer.txt"), "w") as f:
        f.write("-- \nposted to $list_name\n")
    config = os.path.join(work, "stagecoach.conf")
    with open(config, "w") as f:
        f.write(f"[stagecoach]\nspool=spool\nworkers={args.workers}\n"
                f"[mailer:sink]\nurl=smtp://127.0.0.1:{port}\nstarttls=off\n"
                f"max-connections={args.connections}\n"
                "[list:bench.example.org]\npipeline=decorate;deliver\n"
                "subject-prefix=[bench]\nfooter=footer.txt\nbounces=bounces@bench.example\n")
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    body = ("From: a@example.org\r\nTo: bench@example.org\r\nSubject: throughput\r\n\r\n"
            + "line of text, about four kilobytes in all\r\n" * 95).encode()

    def inject(i):
        subprocess.run([binary, "inject", "--list", "bench.example.org", f"rcpt{i}@list.example"],
                       input=body, env=env, check=True, capture_output=True)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(inject, range(args.messages)))
    print(f"injected {args.messages} in {time.monotonic() - t0:.1f} s", flush=True)

    t0 = time.monotonic()
    run = subprocess.run([binary, "run", "--once"], env=env, capture_output=True, text=True,
                         timeout=600)
    seconds = time.monotonic() - t0
    db = sqlite3.connect(os.path.join(work, "spool", "spool.db"))
    (sent,) = db.execute("SELECT count(*) FROM recipients WHERE status='sent'").fetchone()
    db.close()
    stats = re.search(r"mailer sink: transactions=(\d+) connections=(\d+)", run.stderr)

    # the ceiling: smtp-source straight into the same sink, same message size
    t0 = time.monotonic()
    subprocess.run(["smtp-source", "-d", "-N", "-s", str(args.connections), "-m", str(args.messages),
                    "-l", "4096", "-r", "1", "-f", "a@example.org", "-t", "rcpt@list.example",
                    "-M", "bench.localdomain", f"127.0.0.1:{port}"], check=True, capture_output=True,
                   timeout=120)
    direct = args.messages / (time.monotonic() - t0)

    print(f"messages: {args.messages}, 4 KiB, 1 recipient each; runner workers: {args.workers}, "
          f"max-connections: {args.connections}")
    print(f"delivered (recipients sent): {sent}")
    print(f"stagecoach run --once, decorate;deliver: {sent / seconds:.0f} msgs/s ({seconds:.2f} s)")
    if stats:
        print(f"SMTP transactions: {stats.group(1)}, connections opened: {stats.group(2)}")
    print(f"smtp-source -s {args.connections} straight into the same sink: {direct:.0f} msgs/s")
    print(f"ratio stagecoach / smtp-source: {sent / seconds / direct:.2f}")
finally:
    if sink is not None:
        sink.terminate()
        sink.wait()
    shutil.rmtree(work, ignore_errors=True)
