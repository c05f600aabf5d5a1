#!/usr/bin/env python3
"""Ingress: how fast mail gets into stagecoach, side by side with a private Postfix.

Each round, on fresh spools and queues:
  1. SMTP accept: `smtp-source -s S -m M -l 4096 -r 1` into stagecoach's SMTP
     listener ([ingress] smtp=) and into a private Postfix's smtpd.  Accept
     only, on both sides: the relay behind each is a socket that takes
     connections and never says a word, so stagecoach's runner and Postfix's
     smtp clients sit on their first few messages (mailer timeout 10m;
     smtp_helo_timeout 300s) and everything else stays queued: what is
     measured is the door, the durable write and the queue hand-over.  A 250
     means durable on both (stagecoach: committed with synchronous=FULL;
     Postfix: fsynced queue file).
  2. `stagecoach inject` with 1 and with 8 parallel callers into the same
     running daemon (the local hand-off when the daemon offers it, else the
     command writes the spool itself), and the wall time of one inject process.
  3. HTTP inject: POST /api/v1/messages?list=&from=&to= (message/rfc822, Bearer
     token from SPOOL/admin-token) from 8 parallel keep-alive clients.
  4. Idle latency: one message at a time over SMTP (Python smtplib, from before
     connect) until the smtp-sink behind it has written it (polled every
     0.2 ms for the complete dump file): stagecoach with pipeline `deliver`,
     Postfix with relayhost; the median and p99 over L messages.
Figures are medians over --rounds; one table with the ratios stagecoach / Postfix.
Runs as root in private PID + network namespaces (unshare) so nothing leaks
and every process of a round dies with it; without root the Postfix column is
empty.  The command lines it ran are printed.

    sudo scripts/bench-ingress.py [--messages 20000] [--sessions 8] [--inject 1000]
        [--http 4000] [--latency 200] [--rounds 3] [--build DIR]
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "bench"))
from benchlib import BODY, Postfix, Silent, free_port, stop, wait_port  # noqa: E402
import benchlib  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--messages", type=int, default=20000, help="smtp-source -m (SMTP accept)")
parser.add_argument("--sessions", type=int, default=8, help="smtp-source -s")
parser.add_argument("--inject", type=int, default=1000, help="messages per inject measurement")
parser.add_argument("--http", type=int, default=4000, help="messages for HTTP inject")
parser.add_argument("--latency", type=int, default=200, help="messages for the idle latency")
parser.add_argument("--pause", type=float, default=0.02, help="seconds between latency messages")
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--postfix-only", action="store_true",
                    help="only the Postfix column (the anchor), e.g. while stagecoach has no listener")
parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
args = parser.parse_args()

binary = os.path.abspath(os.path.join(args.build, "stagecoach"))
is_root = os.geteuid() == 0
LIST = "bench.example.org"

if is_root and not os.environ.get("SC_BENCH_INNER") and shutil.which("unshare"):
    probe = subprocess.run(["unshare", "--pid", "--fork", "--net", "true"], capture_output=True)
    if probe.returncode == 0:
        print("command: " + " ".join([sys.executable] + sys.argv), flush=True)
        os.environ["SC_BENCH_INNER"] = "1"
        os.execvp("unshare", ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--net",
                              sys.executable] + sys.argv)
if os.environ.get("SC_BENCH_INNER"):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
else:
    print("command: " + " ".join([sys.executable] + sys.argv), flush=True)

commands = []   # every load command line (of the first round), printed at the end


def terminated(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


signal.signal(signal.SIGTERM, terminated)


class Sink:
    def __init__(self, process):
        self.process = process

    def stop(self):
        stop(self.process)


def start_sink(work, name):
    """smtp-sink dumping every transaction to WORK/NAME/; returns (process, port, dir)."""
    dump = os.path.join(work, name)
    os.makedirs(dump)
    if is_root:
        shutil.chown(dump, "nobody")
    port = free_port()
    argv = ["smtp-sink"] + (["-u", "nobody"] if is_root else []) + \
        ["-d", os.path.join(dump, "%H%M%S."), f"127.0.0.1:{port}", "256"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(port, process):
        sys.exit("smtp-sink did not start")
    # the probe connection above left no dump (no MAIL), nothing to clean
    return process, port, dump


class Stagecoach:
    def __init__(self, work, mailer_port, accept_only):
        self.dir = os.path.join(work, "stagecoach-accept" if accept_only else "stagecoach-latency")
        os.makedirs(self.dir)
        self.smtp_port, self.admin_port = free_port(), free_port()
        self.config = os.path.join(self.dir, "stagecoach.conf")
        retry = "initial=1s\nmax-delay=2s\n"
        timeout = "10m" if accept_only else "5s"
        with open(self.config, "w") as f:
            f.write(f"[stagecoach]\nspool={self.dir}/spool\ndefault-list={LIST}\n"
                    f"[retry]\n{retry}"
                    f"[admin]\nlisten=127.0.0.1:{self.admin_port}\n"
                    f"[ingress]\nsmtp=127.0.0.1:{self.smtp_port}\nmax-connections=200\n"
                    f"[mailer:sink]\nurl=smtp://127.0.0.1:{mailer_port}\nstarttls=off\ntimeout={timeout}\n"
                    f"[list:{LIST}]\npipeline=deliver\n")
        self.env = dict(os.environ, STAGECOACH_CONFIG=self.config)
        self.log = open(os.path.join(self.dir, "daemon.log"), "w")
        self.process = subprocess.Popen([binary, "run"], env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        if not wait_port(self.smtp_port, self.process):
            self.stop()
            with open(os.path.join(self.dir, "daemon.log")) as f:
                log = f.read()
            sys.exit(f"stagecoach run does not listen on [ingress] smtp=127.0.0.1:{self.smtp_port} "
                     f"(no SMTP listener in this build?)\n{log}")
        wait_port(self.admin_port, self.process, 10)

    def token(self):
        with open(os.path.join(self.dir, "spool", "admin-token")) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    return line.split()[-1]
        return None

    def status(self):
        out = subprocess.run([binary, "status", "--json"], env=self.env, capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out)

    def stop(self):
        stop(self.process)
        self.log.close()


def smtp_source(port, label):
    argv = ["smtp-source", "-d", "-N", "-s", str(args.sessions), "-m", str(args.messages),
            "-l", "4096", "-r", "1", "-f", "sender@bench.example", "-t", "rcpt@list.example",
            "-M", "bench.localdomain", f"127.0.0.1:{port}"]
    commands.append(f"{label}: " + " ".join(argv))
    t0 = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True, timeout=1800)
    return args.messages / (time.monotonic() - t0)


def start_plain_sink():
    """smtp-sink that stores nothing: the machine's SMTP ceiling for smtp-source."""
    port = free_port()
    argv = ["smtp-sink"] + (["-u", "nobody"] if is_root else []) + [f"127.0.0.1:{port}", "256"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_port(port, process):
        sys.exit("smtp-sink did not start")
    return process, port


def inject_rate(sc, callers, n, argv=None, label="inject"):
    """N runs of ARGV (default: one inject per message) from CALLERS caller
    processes (benchlib.spawn_callers): (msgs/s, median wall ms).  /bin/true
    through the same harness is what this machine can start at all."""
    argv = argv or [binary, "inject", "--list", LIST, "rcpt@list.example"]
    commands.append(f"{label} x{callers}: " + " ".join(argv) + " < 4 KiB message, "
                    f"{callers} caller processes")
    return benchlib.spawn_callers(lambda i: argv, lambda i: BODY, callers, n, sc.env)


def http_rate(sc, clients, n):
    token = sc.token()
    path = f"/api/v1/messages?list={LIST}&from=sender%40bench.example&to=rcpt%40list.example"
    commands.append(f"HTTP x{clients}: POST http://127.0.0.1:{sc.admin_port}{path} "
                    "(Authorization: Bearer <SPOOL/admin-token>, Content-Type: message/rfc822, 4 KiB)")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "message/rfc822"}
    failures = []

    def client(count):
        conn = http.client.HTTPConnection("127.0.0.1", sc.admin_port, timeout=60)
        for _ in range(count):
            conn.request("POST", path, body=BODY, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 201:
                failures.append(f"{response.status} {body[:200]!r}")
                return
        conn.close()
    per = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, per))
    seconds = time.monotonic() - t0
    if failures:
        print(f"  HTTP inject: {len(failures)} client(s) stopped: {failures[0]}", flush=True)
        return None
    return n / seconds


def latency(port, dump_dir, label):
    """SMTP-in -> written by the sink, one message at a time; (median ms, p99 ms)."""
    commands.append(f"latency {label}: smtplib one message at a time to 127.0.0.1:{port}, "
                    f"{args.latency} messages, {args.pause}s apart")
    return benchlib.latency(port, dump_dir, label, args.latency, args.pause)


def fsync_latency(work, n=500):
    """fdatasync after a 4 KiB overwrite in the spool's filesystem: what one
    durable commit waits for at least (an overwrite, as in a WAL that has
    wrapped; no size change to journal).  Median and p99 in ms."""
    path = os.path.join(work, "fsync-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.pwrite(fd, b"\0" * (64 * 4096), 0)
        os.fsync(fd)
        times = []
        for i in range(n):
            os.pwrite(fd, b"x" * 4096, (i % 64) * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]


def run_round(number):
    work = tempfile.mkdtemp(prefix="sc-bench-ingress-")
    os.chmod(work, 0o755)
    procs = []
    r = {}
    try:
        r["fsync"] = fsync_latency(work)
        print(f"  round {number + 1}: fdatasync after a 4 KiB overwrite, idle: median "
              f"{r['fsync'][0]:.3f} ms, p99 {r['fsync'][1]:.3f} ms", flush=True)
        silent = Silent()
        procs.append(silent)
        dead_port = silent.port
        sc = None if args.postfix_only else Stagecoach(work, dead_port, accept_only=True)
        if sc:
            procs.append(sc)
        pf = Postfix(work, "postfix-accept", dead_port, accept_only=True) if is_root else None
        if pf:
            procs.append(pf)
        # alternate who goes first, so neither always gets the cooler machine
        order = [("sc", sc.smtp_port if sc else None), ("pf", pf.port if pf else None)]
        if number % 2 == 1:
            order.reverse()
        for who, port in order:
            if port is not None:
                r[f"smtp_{who}"] = smtp_source(port, "stagecoach" if who == "sc" else "postfix")
        if "smtp_sc" in r:
            print(f"  round {number + 1}: SMTP accept stagecoach {r['smtp_sc']:.0f} msgs/s "
                  f"({sc.status().get('total')} stored of {args.messages})", flush=True)
        if "smtp_pf" in r:
            print(f"  round {number + 1}: SMTP accept postfix {r['smtp_pf']:.0f} msgs/s", flush=True)
        # the ceiling, in the same round: the same load into a sink that does no work
        ceiling_sink, ceiling_port = start_plain_sink()
        procs.append(Sink(ceiling_sink))
        r["smtp_ceiling"] = smtp_source(ceiling_port, "ceiling (smtp-sink, no dump)")
        print(f"  round {number + 1}: SMTP ceiling (smtp-source -> smtp-sink) {r['smtp_ceiling']:.0f} msgs/s",
              flush=True)
        if sc:
            inject_and_http(sc, r, number)
        for p in procs:
            p.stop()
        procs.clear()

        if sc:
            sink, sink_port, sink_dir = start_sink(work, "sink-stagecoach")
            procs.append(Sink(sink))
            # the floor of this measurement: the same client straight into the sink
            r["lat_direct"] = latency(sink_port, sink_dir, "smtp-sink")
            sc = Stagecoach(work, sink_port, accept_only=False)
            procs.append(sc)
            r["lat_sc"] = latency(sc.smtp_port, sink_dir, "stagecoach")
            print(f"  round {number + 1}: idle latency stagecoach median {r['lat_sc'][0]:.2f} ms "
                  f"p99 {r['lat_sc'][1]:.2f} ms", flush=True)
        if is_root:
            psink, psink_port, psink_dir = start_sink(work, "sink-postfix")
            procs.append(Sink(psink))
            pf = Postfix(work, "postfix-relay", psink_port, accept_only=False)
            procs.append(pf)
            r["lat_pf"] = latency(pf.port, psink_dir, "postfix")
            print(f"  round {number + 1}: idle latency postfix median {r['lat_pf'][0]:.2f} ms "
                  f"p99 {r['lat_pf'][1]:.2f} ms", flush=True)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(work, ignore_errors=True)
    return r


def inject_and_http(sc, r, number):
    r["inject1"], r["inject_wall_ms"] = inject_rate(sc, 1, args.inject)
    r["inject8"], _ = inject_rate(sc, 8, args.inject)
    r["true8"], r["true_wall_ms"] = inject_rate(sc, 8, args.inject, ["/bin/true"], "process-start ceiling")
    print(f"  round {number + 1}: inject x1 {r['inject1']:.0f} msgs/s "
          f"(one process {r['inject_wall_ms']:.1f} ms), x8 {r['inject8']:.0f} msgs/s; "
          f"/bin/true x8 {r['true8']:.0f}/s ({r['true_wall_ms']:.1f} ms)", flush=True)
    r["http8"] = http_rate(sc, 8, args.http)
    if r["http8"] is not None:
        print(f"  round {number + 1}: HTTP inject x8 {r['http8']:.0f} msgs/s", flush=True)


print(f"stagecoach: {binary}; {os.cpu_count()} CPUs; load average "
      + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f"; rounds: {args.rounds}; "
      f"Postfix: {'yes' if is_root else 'no (needs root)'}", flush=True)
rounds = []
for i in range(args.rounds):
    rounds.append(run_round(i))
    if i == 0:
        first_commands = list(commands)
commands = first_commands


def per_round(key, index=None):
    return benchlib.column(rounds, key, index)


def med(key, index=None):
    return benchlib.median_of(per_round(key, index))


def fmt(value, unit):
    return "n/a" if value is None else f"{value:,.0f} {unit}" if unit == "msgs/s" else f"{value:.2f} {unit}"


# ratios are the median of each round's own: stagecoach and Postfix run minutes apart in
# a round, and the machine drifts over a run (doc/DECISIONS.md, "bench.sh (issue 9)")
ratios = {
    "smtp": benchlib.median_ratio(per_round("smtp_sc"), per_round("smtp_pf")),
    "lat0": benchlib.median_ratio(per_round("lat_sc", 0), per_round("lat_pf", 0)),
    "lat1": benchlib.median_ratio(per_round("lat_sc", 1), per_round("lat_pf", 1)),
}
rows = [
    (f"SMTP accept, smtp-source -s {args.sessions} -m {args.messages} -l 4096",
     med("smtp_sc"), med("smtp_pf"), "msgs/s", ratios["smtp"]),
    (f"ceiling: smtp-source -s {args.sessions} -> smtp-sink (stores nothing)", med("smtp_ceiling"), None, "msgs/s"),
    ("fdatasync, 4 KiB overwrite, idle disk, median (what each 250 waits for)", med("fsync", 0), None, "ms"),
    ("fdatasync, 4 KiB overwrite, idle disk, p99", med("fsync", 1), None, "ms"),
    (f"inject, 1 caller ({args.inject} msgs)", med("inject1"), None, "msgs/s"),
    ("one inject process, wall (median), 1 caller", med("inject_wall_ms"), None, "ms"),
    (f"inject, 8 parallel callers ({args.inject} msgs)", med("inject8"), None, "msgs/s"),
    (f"ceiling: /bin/true, 8 parallel callers, same harness", med("true8"), None, "msgs/s"),
    ("one /bin/true process, wall (median), 8 callers", med("true_wall_ms"), None, "ms"),
    (f"HTTP inject, 8 clients ({args.http} msgs)", med("http8"), None, "msgs/s"),
    (f"latency floor: smtplib straight into smtp-sink, median", med("lat_direct", 0), None, "ms"),
    (f"idle latency SMTP-in -> sink, median ({args.latency} msgs)", med("lat_sc", 0), med("lat_pf", 0), "ms",
     ratios["lat0"]),
    (f"idle latency SMTP-in -> sink, p99 ({args.latency} msgs)", med("lat_sc", 1), med("lat_pf", 1), "ms",
     ratios["lat1"]),
]
print()
print(f"medians of {args.rounds} round(s), sc/postfix the median of each round's own; accept = durable 250 while the relay behind takes "
      "connections and never answers (nothing delivered meanwhile); load average at the end: "
      + " ".join(f"{x:.1f}" for x in os.getloadavg()))
print(f"{'what':<58} {'stagecoach':>14} {'postfix':>14} {'sc/postfix':>10}")
for what, sc_value, pf_value, unit, *paired in rows:
    ratio = f"{paired[0]:.2f}" if paired and paired[0] else "-"
    print(f"{what:<58} {fmt(sc_value, unit):>14} {fmt(pf_value, unit) if pf_value else '-':>14} {ratio:>10}")
if med("smtp_pf") and med("smtp_ceiling"):
    target = 10 * med("smtp_pf")
    print(f"\nSMTP accept target 10x Postfix = {target:,.0f} msgs/s = {100 * target / med('smtp_ceiling'):.0f} % "
          f"of the ceiling; stagecoach reached {100 * (med('smtp_sc') or 0) / med('smtp_ceiling'):.0f} % of it")
print()
print("per round: " + json.dumps([{k: (round(v, 2) if isinstance(v, float) else
                                       [round(x, 2) for x in v] if isinstance(v, tuple) else v)
                                   for k, v in r.items()} for r in rounds]))
print("commands (round 1; ports change every round):")
for line in commands:
    print("  " + line)
bench_inject = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-inject.py")
if os.path.exists(bench_inject):
    # the hand-off's own benchmark: posix_spawn callers, hand-off vs. writing the spool
    argv = [sys.executable, bench_inject, "--build", args.build, "--single", "100", "--messages", "100"]
    print("\n" + " ".join(argv) + ":", flush=True)
    subprocess.run(argv, timeout=1800)
