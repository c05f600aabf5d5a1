#!/usr/bin/env python3
"""How fast `inject` accepts mail: one process's wall time and the rate of
8 parallel callers, through the daemon's hand-off socket and directly.

Starts `stagecoach run` on a fresh spool (pipeline "archive" to nowhere, so
the runner's work stays small) and times, in the same run:
- one `inject` into the idle daemon (median and p90 of --single runs,
  a pause between them), next to `stagecoach-main --version` (the full
  program's start alone) and /bin/true (process start alone);
- --callers parallel callers x --messages each, through the daemon;
- the same with the daemon stopped: every inject writes the spool itself
  (the path without a daemon, and the one before the hand-off existed).
Every message is 4 KiB with a Message-ID of its own.  Processes are started
with posix_spawn, the message written to a pipe on their stdin; each
parallel caller is a process of its own (benchlib.spawn_callers).

    scripts/bench-inject.py [--single N] [--callers N] [--messages N] [--build DIR]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "bench"))
from benchlib import spawn_callers, spawn_one  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--single", type=int, default=200, help="runs timed one at a time")
parser.add_argument("--callers", type=int, default=8)
parser.add_argument("--messages", type=int, default=200, help="per caller")
parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
args = parser.parse_args()

build = os.path.abspath(args.build)
front = os.path.join(build, "stagecoach")
main_program = os.path.join(build, "stagecoach-main")
work = tempfile.mkdtemp(prefix="sc-bench-inject-")


def message(tag):
    """4 KiB with a Message-ID of its own: @tag and this process's id."""
    head = (f"From: a@example.org\r\nTo: bench@example.org\r\nSubject: bench {tag}\r\n"
            f"Message-ID: <bench-{tag}-{os.getpid()}@example.org>\r\n\r\n")
    return (head + ("y" * 70 + "\r\n") * 56).encode()


def single(argv, env, with_message):
    times = []
    for n in range(args.single):
        times.append(spawn_one(argv, env, message(f"single-{n}") if with_message else b""))
        time.sleep(0.005)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.9)] * 1000


def parallel(env, argv=None):
    """--callers processes, each starting --messages injects in turn."""
    inject = argv or [front, "inject", "--list", "bench.example.org", "r@example.net"]
    rate, _ = spawn_callers(lambda n: inject, lambda n: message(f"parallel-{n}"), args.callers,
                            args.callers * args.messages, env)
    return rate


try:
    config = os.path.join(work, "stagecoach.conf")
    with open(config, "w") as f:
        f.write("[stagecoach]\nspool=spool\nworkers=2\n[admin]\nlisten=\n"
                "[list:bench.example.org]\npipeline=archive\narchive=\n")
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    inject = [front, "inject", "--list", "bench.example.org", "r@example.net"]
    subprocess.run([main_program, "status"], env=env, check=True, stdout=subprocess.DEVNULL)
    daemon = subprocess.Popen([main_program, "run"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = os.path.join(work, "spool", "ingress.sock")
    for _ in range(200):
        if os.path.exists(socket):
            break
        time.sleep(0.05)
    else:
        sys.exit("the daemon made no hand-off socket")

    true_ms = single(["/bin/true"], env, False)
    version_ms = single([main_program, "--version"], env, False)
    handoff_ms = single(inject, env, True)
    handoff_rate = parallel(env)
    # the ceiling of this harness: spawning a process that does nothing
    true_rate = parallel(env, ["/bin/true"])
    daemon.send_signal(signal.SIGTERM)
    daemon.wait()
    direct_ms = single(inject, env, True)
    direct_rate = parallel(env)

    print(f"one process, median / p90 of {args.single} (ms):")
    print(f"  /bin/true                      {true_ms[0]:6.2f} / {true_ms[1]:6.2f}")
    print(f"  stagecoach-main --version      {version_ms[0]:6.2f} / {version_ms[1]:6.2f}")
    print(f"  inject, daemon (hand-off)      {handoff_ms[0]:6.2f} / {handoff_ms[1]:6.2f}")
    print(f"  inject, no daemon (direct)     {direct_ms[0]:6.2f} / {direct_ms[1]:6.2f}")
    print(f"{args.callers} parallel callers x {args.messages} messages (msgs/s):")
    print(f"  /bin/true (spawn ceiling)      {true_rate:8.0f}")
    print(f"  inject, daemon (hand-off)      {handoff_rate:8.0f}")
    print(f"  inject, no daemon (direct)     {direct_rate:8.0f}")
    print(f"  hand-off / direct              {handoff_rate / direct_rate:8.1f}")
    print(f"  hand-off / spawn ceiling       {handoff_rate / true_rate:8.2f}")
    print("command: " + " ".join([sys.argv[0]] + sys.argv[1:]))
finally:
    shutil.rmtree(work, ignore_errors=True)
