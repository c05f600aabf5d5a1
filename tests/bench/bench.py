#!/usr/bin/env python3
"""stagecoach side by side with Postfix: the figures of issue 9, one table.

Run through scripts/bench.sh (which installs what is missing and builds first):

    scripts/bench.sh [--quick] [--messages N] [--rounds R] [--only 1,3,6 | --skip 8]
                     [--scale N] [--write doc/performance.md]

Figures (see doc/DECISIONS.md, "bench.sh (issue 9)"):
  1 ceiling     smtp-source -> smtp-sink
  2 anchor      smtp-source -> private Postfix (queue fsynced) -> smtp-sink, end to end
  3 e2e         smtp-source -> stagecoach [ingress] smtp= -> decorate;deliver -> smtp-sink;
                and `stagecoach inject` x8 callers -> the same
  4 full        the same with decorate;archive;deliver
  5 retry       every message answered 450 twice then 250 (one C receiver, both sides)
  6 latency     idle SMTP-in -> written at the sink, median and p99
  7 fan-out     one message to 10,000 recipients over 500 domains
  8 scale       N messages deferred: run --once claim, status, list, show, overview, RSS
                against the same with 1,000
  9 callgrind   instructions per message and per stage (valgrind --tool=callgrind)
 10 sign        the sign stage's cost per message (RSA-2048, Ed25519) beside decorate's,
                over the corpus and on a 4 KiB post (build/tests/bench-sign, one thread)
Runs as root in private PID + network namespaces (unshare): every process dies with
it.  Without root there is no Postfix column.
"""
import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ALL = list(range(1, 11))

parser = argparse.ArgumentParser(
    description="stagecoach vs Postfix side by side (issue 9); prints one table",
    epilog="--quick: 2,000 messages, 1 round, --scale 50000 and smaller counts elsewhere; "
           "explicit options override it.")
parser.add_argument("--messages", type=int, help="messages for figures 1-4 (default 20000)")
parser.add_argument("--rounds", type=int, help="repeats of each figure, medians printed (default 3)")
parser.add_argument("--sessions", type=int, default=8, help="smtp-source -s (default 8)")
parser.add_argument("--inject", type=int, help="messages for inject x8 (default 500)")
parser.add_argument("--retry", type=int, help="messages for the retry figure (default 20000, as figures 1-4: with 2,000 its two 1-second delays alone capped any sender at 1,000 msgs/s)")
parser.add_argument("--latency", type=int, help="messages for the idle latency (default 200)")
parser.add_argument("--fanout", type=int, help="recipients of the fan-out message (default 10000)")
parser.add_argument("--domains", type=int, default=500, help="their domains (default 500)")
parser.add_argument("--scale", type=int, help="deferred messages for figure 8 (default 1000000)")
parser.add_argument("--scale-small", type=int, default=1000, help="its baseline (default 1000)")
parser.add_argument("--callgrind", type=int, help="messages under callgrind (default 200)")
parser.add_argument("--only", help="comma-separated figure numbers to run")
parser.add_argument("--skip", help="comma-separated figure numbers to leave out")
parser.add_argument("--quick", action="store_true", help="everything small, in a few minutes")
parser.add_argument("--write", metavar="FILE", help="also write the table, machine and command to FILE")
parser.add_argument("--build", default=os.path.join(ROOT, "build"))
args = parser.parse_args()

QUICK = dict(messages=2000, rounds=1, inject=200, retry=500, latency=100, fanout=10000,
             scale=50000, callgrind=100)
FULL = dict(messages=20000, rounds=3, inject=500, retry=20000, latency=200, fanout=10000,
            scale=1000000, callgrind=200)
for key, value in (QUICK if args.quick else FULL).items():
    if getattr(args, key) is None:
        setattr(args, key, value)


def figures_from(text):
    try:
        chosen = {int(x) for x in text.split(",") if x.strip()}
    except ValueError:
        parser.error(f"not a list of figure numbers: {text!r}")
    if not chosen <= set(ALL):
        parser.error(f"figures are 1 to {ALL[-1]}: {text!r}")
    return chosen


FIGURES = figures_from(args.only) if args.only else set(ALL)
if args.skip:
    FIGURES -= figures_from(args.skip)

COMMAND = "scripts/bench.sh " + " ".join(shlex.quote(a) for a in sys.argv[1:])
if not os.environ.get("SC_BENCH_INNER"):
    START = {"load": os.getloadavg(), "date": datetime.datetime.now().astimezone()}
    os.environ["SC_BENCH_START"] = json.dumps({"load": START["load"],
                                               "date": START["date"].isoformat(timespec="seconds")})
bl.enter_namespace()
START = json.loads(os.environ.get("SC_BENCH_START") or json.dumps(
    {"load": os.getloadavg(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}))

BINARY = os.path.abspath(os.path.join(args.build, "stagecoach"))
MAIN = os.path.abspath(os.path.join(args.build, "stagecoach-main"))
REFUSER = os.path.abspath(os.path.join(args.build, "tests", "bench-refuser"))
ROOT_OK = bl.is_root()
WORK = tempfile.mkdtemp(prefix="sc-bench-", dir="/var/tmp")  # on disk: fsync is real
os.chmod(WORK, 0o755)


def terminated(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


signal.signal(signal.SIGTERM, terminated)
signal.signal(signal.SIGINT, terminated)

class BenchError(Exception):
    """A figure that could not be measured: noted under the table, the run goes on."""


commands = {}   # figure -> the command lines it ran (first round)
notes = []      # what did not go as planned, printed under the table


def log(text):
    print(text, flush=True)


def note_command(figure, line):
    commands.setdefault(figure, [])
    if line not in commands[figure]:
        commands[figure].append(line)


class Stagecoach:
    """`stagecoach run` on a fresh spool with the SMTP ingress and one mailer."""

    def __init__(self, name, mailer_port, pipeline="decorate;deliver", retry_fast=False,
                 admin=True, ingress=True, argv_prefix=None, start=True, list_extra=""):
        self.dir = os.path.join(WORK, name)
        os.makedirs(self.dir)
        self.smtp_port = bl.free_port() if ingress else None
        self.admin_port = bl.free_port() if admin else None
        self.config = os.path.join(self.dir, "stagecoach.conf")
        with open(os.path.join(self.dir, "footer.txt"), "w") as f:
            f.write("-- \nposted to $list_name\n")
        text = f"[stagecoach]\nspool={self.dir}/spool\ndefault-list={bl.LIST}\n"
        if retry_fast:
            text += "[retry]\ninitial=1s\nmax-delay=1s\njitter=0\n"
        if admin:
            text += f"[admin]\nlisten=127.0.0.1:{self.admin_port}\n"
        if ingress:
            text += (f"[ingress]\nsmtp=127.0.0.1:{self.smtp_port}\nmax-connections=200\n"
                     "max-recipients=100000\n")
        if mailer_port is not None:
            text += f"[mailer:sink]\nurl=smtp://127.0.0.1:{mailer_port}\nstarttls=off\n"
        text += (f"[list:{bl.LIST}]\npipeline={pipeline}\nsubject-prefix=[bench]\n"
                 f"footer={self.dir}/footer.txt\nbounces=bounces@bench.example\n"
                 f"archive=maildir:{self.dir}/archive\n" + list_extra)
        with open(self.config, "w") as f:
            f.write(text)
        self.env = dict(os.environ, STAGECOACH_CONFIG=self.config)
        self.process = None
        if start:
            self.start(argv_prefix)

    def start(self, argv_prefix=None):
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.log = open(self.log_path, "a")
        argv = (argv_prefix or []) + [MAIN if argv_prefix else BINARY, "run"]
        self.process = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        port = self.smtp_port or self.admin_port
        if port is not None and not bl.wait_port(port, self.process, 300 if argv_prefix else 20):
            self.stop()
            with open(self.log_path) as f:
                raise BenchError(f"stagecoach run did not listen on 127.0.0.1:{port}\n{f.read()[-3000:]}")
        if self.admin_port is not None:
            bl.wait_port(self.admin_port, self.process, 300 if argv_prefix else 20)

    def finished(self, n):
        """Whether @n messages are done (or dead): the spool's state counts, read-only."""
        path = os.path.join(self.dir, "spool", "spool.db")
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db:
                row = db.execute("SELECT coalesce(sum(count), 0) FROM state_counts"
                                 " WHERE state IN ('done', 'dead')").fetchone()
        except sqlite3.Error:
            return False
        return row[0] >= n

    def cli(self, *argv, input=None):
        return subprocess.run([BINARY, *argv], env=self.env, input=input, capture_output=True,
                              check=True)

    def token(self):
        with open(os.path.join(self.dir, "spool", "admin-token")) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    return line.split()[-1]
        return None

    def cpu_seconds(self):
        """The daemon's CPU so far, every thread; the front execs stagecoach-main in the
        same process."""
        return bl.cpu_seconds(self.process.pid)

    def stop(self):
        bl.stop(self.process, 60)
        if self.process is not None:
            self.log.close()


# µs of the target's CPU per message in e2e's last run of (figure, label), when it says
cpu_per_message = {}


def cleanup(*things):
    for thing in reversed(things):
        if thing is not None:
            thing.stop()


def e2e(figure, label, make_target, n, use_source=True, feed=None):
    """Start a sink and what @make_target(sink_port) builds (an object with .port or
    .smtp_port, .finished(n) and .stop()); feed it with smtp-source (or @feed(target));
    the seconds until the target has passed on every message, as msgs/s.  Straight
    into the sink (no target) the end is smtp-source's last 250.  (smtp-sink -M, "exit
    after N messages", served ~1.4x slower and cut off smtp-source's last QUITs: the
    ceiling read 1,450 msgs/s where a plain sink took 2,900-4,200 on the same machine.)"""
    sink = bl.Sink(WORK, f"sink-{figure}-{label}-{time.monotonic_ns()}")
    target = None
    try:
        target = make_target(sink.port) if make_target else None
        port = sink.port if target is None else getattr(target, "smtp_port", None) or target.port
        t0 = time.monotonic()
        if feed is None:
            argv = bl.smtp_source_argv(port, n, args.sessions)
            note_command(figure, f"{label}: " + " ".join(argv) + f"  (sink: {' '.join(sink.argv)})")
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            sink_cpu = bl.cpu_seconds(sink.process.pid)
            source = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
            if target is None:
                # the load's own CPU: smtp-source (the one child reaped meanwhile) and the sink
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu_per_message[(figure, "load")] = (
                    after.ru_utime - children.ru_utime + after.ru_stime - children.ru_stime
                    + bl.cpu_seconds(sink.process.pid) - sink_cpu) / n * 1e6
            if source.returncode != 0:
                notes.append(f"figure {figure} {label}: smtp-source exit {source.returncode}: "
                             f"{source.stderr.strip()[-300:]}")
        else:
            feed(target)
        accepted = time.monotonic() - t0
        end = time.monotonic()
        if target is not None:
            # polled every 10 ms: a run lasts seconds
            deadline = end + max(120, n / 20)
            while not target.finished(n):
                if time.monotonic() > deadline:
                    notes.append(f"figure {figure} {label}: not all {n} messages passed on "
                                 f"within {max(120, n / 20):.0f} s")
                    return None
                time.sleep(0.01)
            end = time.monotonic()
            if hasattr(target, "cpu_seconds"):
                cpu_per_message[(figure, label)] = target.cpu_seconds() / n * 1e6
        log(f"  {figure} {label}: {n / (end - t0):,.0f} msgs/s end to end "
            f"(accepted in {accepted:.2f} s, all at the sink after {end - t0:.2f} s)"
            + (f", daemon CPU {cpu_per_message[(figure, label)]:.0f} µs per message"
               if (figure, label) in cpu_per_message else ""))
        return n / (end - t0)
    finally:
        cleanup(sink, target)


# ---------------------------------------------------------------- figures


def fig1():
    cpu_per_message.pop((1, "load"), None)
    return {"ceiling": e2e(1, "smtp-sink", None, args.messages),
            "load_cpu": cpu_per_message.get((1, "load"))}


def fig2():
    if not ROOT_OK:
        return {}
    return {"postfix": e2e(2, "postfix", lambda port: bl.Postfix(WORK, f"pf-{time.monotonic_ns()}", port),
                           args.messages)}


def fig3():
    cpu_per_message.pop((3, "stagecoach"), None)
    r = {"sc": e2e(3, "stagecoach", lambda port: Stagecoach(f"sc3-{time.monotonic_ns()}", port),
                   args.messages)}
    r["cpu"] = cpu_per_message.get((3, "stagecoach"))
    n = args.inject

    def feed(sc):
        argv = [BINARY, "inject", "--list", bl.LIST, "-f", "sender@bench.example"]
        note_command(3, "inject x8: " + " ".join(argv) + " rcptN@list.example < 4 KiB message, "
                     f"{n} messages from 8 caller processes")
        bl.spawn_callers(lambda i: argv + [f"rcpt{i}@list.example"], lambda i: bl.BODY, 8, n, sc.env)
    r["inject"] = e2e(3, "inject x8", lambda port: Stagecoach(f"sc3i-{time.monotonic_ns()}", port),
                      n, feed=feed)
    return r


def fig4():
    return {"sc": e2e(4, "stagecoach full", lambda port: Stagecoach(
        f"sc4-{time.monotonic_ns()}", port, pipeline="decorate;archive;deliver"), args.messages)}


def retry_run(label, make):
    refuser = bl.CRefuser(REFUSER, 2)
    target = None
    n = args.retry
    try:
        target = make(refuser.port)
        port = getattr(target, "smtp_port", None) or target.port
        refuser.expect(n)
        argv = bl.smtp_source_argv(port, n, args.sessions)
        note_command(5, f"{label}: " + " ".join(argv))
        t0 = time.monotonic()
        source = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
        if source.returncode != 0:
            raise BenchError(f"figure 5 {label}: {' '.join(argv)}: exit {source.returncode}: "
                             f"{source.stderr.strip()[-300:]}")
        limit = max(180, n / 5 + 120)
        if not refuser.all_accepted.wait(limit):
            notes.append(f"figure 5 {label}: {refuser.accepted} of {n} accepted after {limit:.0f} s "
                         f"({refuser.refused} refusals)")
            return None
        seconds = time.monotonic() - t0
        t99 = sorted(refuser.accept_times)[max(0, -(-99 * n // 100) - 1)] - t0
        if seconds > 2 * t99 + 5:
            notes.append(f"figure 5 {label}: 99% of the messages were accepted after {t99:.1f} s, "
                         f"all after {seconds:.1f} s (stragglers; 99% rate {0.99 * n / t99:,.0f} msgs/s)")
        log(f"  5 retry {label}: {n / seconds:,.0f} msgs/s ({seconds:.2f} s, 99% after {t99:.2f} s, "
            f"{refuser.refused} refusals, {refuser.accepted} accepted)")
        return n / seconds
    finally:
        cleanup(refuser, target)


def fig5():
    r = {"sc": retry_run("stagecoach", lambda port: Stagecoach(
        f"sc5-{time.monotonic_ns()}", port, retry_fast=True))}
    if ROOT_OK:
        r["postfix"] = retry_run("postfix", lambda port: bl.Postfix(
            WORK, f"pf5-{time.monotonic_ns()}", port,
            extra="minimal_backoff_time = 1s\nmaximal_backoff_time = 1s\nqueue_run_delay = 1s\n",
            # a message qmgr skipped ("still being delivered": its 1 s backoff ended before
            # the smtp process let go of it) goes to incoming for 60 s, which only a
            # wakeup scans: every second rather than every 300 s
            qmgr_wakeup=1))
    return r


def fig6():
    r = {}
    sink = bl.Sink(WORK, f"sink6-{time.monotonic_ns()}", dump=True)
    sc = None
    try:
        note_command(6, f"smtplib one message at a time, {args.latency} messages 20 ms apart, "
                     f"until the complete dump file appears ({' '.join(sink.argv)})")
        r["floor"] = bl.latency(sink.port, sink.dir, "smtp-sink", args.latency)
        sc = Stagecoach(f"sc6-{time.monotonic_ns()}", sink.port)
        r["sc"] = bl.latency(sc.smtp_port, sink.dir, "stagecoach", args.latency)
    finally:
        cleanup(sink, sc)
    if ROOT_OK:
        sink = bl.Sink(WORK, f"sink6p-{time.monotonic_ns()}", dump=True)
        pf = None
        try:
            pf = bl.Postfix(WORK, f"pf6-{time.monotonic_ns()}", sink.port)
            r["postfix"] = bl.latency(pf.port, sink.dir, "postfix", args.latency)
        finally:
            cleanup(sink, pf)
    log("  6 latency ms (median, p99): " + ", ".join(f"{k} {v[0]:.2f} {v[1]:.2f}" for k, v in r.items()))
    return r


def fanout_run(label, make):
    sink = bl.Sink(WORK, f"sink7-{time.monotonic_ns()}", dump=True)
    target = None
    n = args.fanout
    try:
        target = make(sink.port)
        port = getattr(target, "smtp_port", None) or target.port
        rcpts = [f"r{i}@d{i % args.domains}.example" for i in range(n)]
        message = bl.BODY.replace(b"Subject: ingress", f"Message-ID: <fanout-{time.time_ns()}"
                                  "@bench.example>\r\nSubject: fan-out".encode())
        note_command(7, f"{label}: smtplib, one message to {n} recipients r<i>@d<i mod "
                     f"{args.domains}>.example, to 127.0.0.1:{port}; recipients counted in the "
                     "sink's dump files (X-Rcpt-Args)")
        t0 = time.monotonic()
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.localdomain", timeout=600) as smtp:
            smtp.sendmail("sender@bench.example", rcpts, message)
        accepted = time.monotonic() - t0
        done = {}
        limit = time.monotonic() + max(300, n / 10)
        while time.monotonic() < limit:
            if bl.count_rcpts(sink.dir, done) >= n:
                break
            time.sleep(0.02)
        got = bl.count_rcpts(sink.dir, done)
        if got < n:
            notes.append(f"figure 7 {label}: {got} of {n} recipients at the sink in time")
            return None
        seconds = time.monotonic() - t0
        log(f"  7 fan-out {label}: {seconds:.2f} s ({n} recipients accepted in {accepted:.2f} s, "
            f"{len(done)} transactions at the sink)")
        return seconds
    finally:
        cleanup(sink, target)


def fig7():
    r = {"sc": fanout_run("stagecoach", lambda port: Stagecoach(f"sc7-{time.monotonic_ns()}", port))}
    if ROOT_OK:
        r["postfix"] = fanout_run("postfix", lambda port: bl.Postfix(
            WORK, f"pf7-{time.monotonic_ns()}", port, extra=f"smtpd_recipient_limit = {args.fanout + 10}\n"))
    return r


def timed(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.monotonic()
        fn()
        times.append((time.monotonic() - t) * 1000)
    return statistics.median(times)


def rss_kib(pid):
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def scale_one(total):
    """A spool with @total deferred messages (bulk SQLite insert into the real schema)
    plus one claim batch (64) of due ones; the timings of figure 8."""
    silent = bl.Silent()
    sc = Stagecoach(f"sc8-{total}", silent.port, pipeline="decorate", ingress=False, start=False)
    r = {}
    try:
        sc.cli("status")  # creates the spool with the real schema
        db = sqlite3.connect(os.path.join(sc.dir, "spool", "spool.db"))
        now = int(time.time() * 1_000_000)
        t0 = time.monotonic()
        db.execute("""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO messages (queue_id, list_id, sender, subject, message_id, pipeline, state,
                                  created_at, updated_at, cycle_started_at, attempts,
                                  next_attempt_at, size, last_error)
            SELECT printf('%016x', i), ?, 'owner@example.org', 'Subject number ' || i,
                   '<m' || i || '@example.org>', 'decorate', 'deferred',
                   ? - i * 1000, ? - i * 1000, ? - i * 1000, 1, ? + 86400000000 + i, 4096,
                   '451 4.4.1 relay did not answer'
            FROM n""", (total, bl.LIST, now, now, now, now))
        db.execute("INSERT INTO bodies (message_id, raw) SELECT id, 'Subject: x\r\n\r\nx\r\n' FROM messages")
        db.execute("INSERT INTO recipients (message_id, position, address, status, updated_at) "
                   "SELECT id, 0, 'r' || id || '@list.example', 'deferred', ? FROM messages", (now,))
        db.commit()
        db.close()
        fill = time.monotonic() - t0
        note_command(8, f"spool of N deferred messages: one SQLite INSERT ... WITH RECURSIVE into "
                     f"messages, bodies, recipients (real schema, triggers run); N={total} took "
                     f"{fill:.1f} s; then 64 due messages through `stagecoach inject` (no daemon)")
        for i in range(64):
            sc.cli("inject", "--list", bl.LIST, f"due{i}@list.example", input=bl.BODY)
        t = time.monotonic()
        subprocess.run([BINARY, "run", "--once"], env=sc.env, check=True, capture_output=True,
                       timeout=3600)
        r["claim"] = (time.monotonic() - t) * 1000
        done = json.loads(sc.cli("status", "--json").stdout).get("done")
        if done != 64:
            notes.append(f"figure 8: run --once with {total} deferred finished {done} of 64 due")
        middle = f"{total // 2:016x}"
        r["status"] = timed(lambda: sc.cli("status"))
        r["list"] = timed(lambda: sc.cli("list"))
        r["show"] = timed(lambda: sc.cli("show", middle))
        t = time.monotonic()
        sc.start()
        base = f"http://127.0.0.1:{sc.admin_port}"
        while time.monotonic() - t < 300:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=5).read()
                break
            except OSError:
                time.sleep(0.02)
        r["start"] = (time.monotonic() - t) * 1000
        token = sc.token()

        def get(path):
            request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=300) as response:
                response.read()

        def overview():  # what the dashboard's overview page asks for
            get("/api/v1/status")
            get("/api/v1/mailers")
        r["overview"] = timed(overview)
        r["page"] = timed(lambda: get(f"/api/v1/messages?state=deferred&limit=50"))
        memory = rss_kib(sc.process.pid)
        r["rss"] = memory["VmRSS"] / 1024
        r["hwm"] = memory["VmHWM"] / 1024
        log(f"  8 scale {total:,}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
    finally:
        cleanup(silent, sc)
        if not os.environ.get("SC_BENCH_KEEP"):
            shutil.rmtree(sc.dir, ignore_errors=True)
    return r


def fig8():
    note_command(8, "timed: stagecoach run --once (claims the 64 due among N deferred, decorates, "
                 "exits); stagecoach status; stagecoach list (100 newest); stagecoach show ID; "
                 "stagecoach run until /healthz answers; GET /api/v1/status + /api/v1/mailers "
                 "(the overview page); GET /api/v1/messages?state=deferred&limit=50; VmRSS/VmHWM "
                 "of the daemon after them.  Medians of 5 but run --once and the start (once each)")
    return {"small": scale_one(args.scale_small), "big": scale_one(args.scale)}


GROUPS = [  # figure 9: (label, functions whose inclusive counts are added)
    ("ingress: SMTP session + acceptor commit", ["sc_smtp_session_run", "writer_thread"]),
    ("claim (runner_claim)", ["runner_claim"]),
    ("decorate (decorate_run)", ["decorate_run"]),
    ("deliver (sc_deliver_run)", ["sc_deliver_run"]),
    ("record results (record_all)", ["record_all"]),
    ("all SQLite statements (sqlite3_step)", ["sqlite3_step"]),
]


def callgrind_objects(path):
    """Self cost (Ir) per shared object from a callgrind output file."""
    names = {}
    cost = {}
    current = None
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            if not line or line[0] == "\n":
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2 and current is not None:
                    cost[current] = cost.get(current, 0) + int(parts[1])
                continue
            if line.startswith("ob="):
                m = re.match(r"ob=\((\d+)\)(?: (.*))?", line.strip())
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    current = names.get(m.group(1), m.group(1))
                else:
                    current = line[3:].strip()
            elif line.startswith("cob="):
                m = re.match(r"cob=\((\d+)\)(?: (.*))?", line.strip())
                if m and m.group(2):
                    names[m.group(1)] = m.group(2)
            elif line.startswith("calls="):
                skip_next = True
    return cost


def fig9():
    if shutil.which("valgrind") is None:
        notes.append("figure 9: valgrind is not installed")
        return {}
    n = args.callgrind
    warmup = 10
    out = os.path.join(WORK, "callgrind.out")
    sink = bl.Sink(WORK, "sink9", dump=True)
    prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-line=no"]
    sc = None
    r = {}

    def at_sink(count, timeout=600):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(os.listdir(sink.dir)) >= count:
                return True
            time.sleep(0.05)
        return False
    try:
        sc = Stagecoach("sc9", sink.port, argv_prefix=prefix)
        # one-off costs (first GMime parse, charset tables, connection set-up) out of the
        # figure: a few messages first, then the counters zeroed
        subprocess.run(bl.smtp_source_argv(sc.smtp_port, warmup, 1), check=True, capture_output=True,
                       timeout=600)
        if not at_sink(warmup):
            raise BenchError("figure 9: the warm-up messages did not reach the sink under callgrind")
        time.sleep(0.5)
        subprocess.run(["callgrind_control", "-z", str(sc.process.pid)], check=True, capture_output=True)
        argv = bl.smtp_source_argv(sc.smtp_port, n, 1)
        note_command(9, " ".join(prefix) + f" {MAIN} run  (decorate;deliver; {warmup} messages "
                     "first, then counters zeroed with callgrind_control -z, dumped with -d once "
                     "the sink has all)")
        note_command(9, " ".join(argv))
        subprocess.run(argv, check=True, capture_output=True, timeout=1800)
        if not at_sink(warmup + n):
            raise BenchError(f"figure 9: the sink did not get {n} messages under callgrind")
        time.sleep(0.5)
        subprocess.run(["callgrind_control", "-d", str(sc.process.pid)], check=True, capture_output=True)
    finally:
        cleanup(sink, sc)
    dumps = sorted(p for p in os.listdir(WORK) if p.startswith("callgrind.out"))
    dumped = [os.path.join(WORK, p) for p in dumps if p != "callgrind.out"]
    path = dumped[0] if dumped else out
    annotated = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                               capture_output=True, text=True).stdout
    total = None
    inclusive = {}
    for line in annotated.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\d.]+%\)\s+)?(?:\*\s+)?(.*?)\s*$", line)
        if not m:
            continue
        value = int(m.group(1).replace(",", ""))
        what = m.group(2)
        if what.startswith("PROGRAM TOTALS") or what == "PROGRAM TOTALS":
            total = value
            continue
        fn = what.split(":")[-1].split(" ")[0].split("'")[0]
        inclusive[fn] = max(inclusive.get(fn, 0), value)
    if total is None:
        m = re.search(r"([\d,]+)\s+\(?[\d.%)]*\s*PROGRAM TOTALS", annotated)
        total = int(m.group(1).replace(",", "")) if m else None
    r["total"] = total / n if total else None
    r["groups"] = []
    for label, fns in GROUPS:
        found = [inclusive[f] for f in fns if f in inclusive]
        r["groups"].append((label, sum(found) / n if found else None,
                            [f for f in fns if f not in inclusive]))
    objects = callgrind_objects(path)
    r["objects"] = sorted(((os.path.basename(k), v / n) for k, v in objects.items()),
                          key=lambda x: -x[1])[:8]
    shutil.copy(path, os.path.join(WORK, "callgrind-kept.out"))
    log(f"  9 callgrind: {r['total']:,.0f} instructions per message" if r["total"] else
        "  9 callgrind: no total found")
    return r


def fig10():
    """The sign stage (issue 11): µs per message, from build/tests/bench-sign."""
    program = os.path.join(os.path.abspath(args.build), "tests", "bench-sign")
    corpus = os.environ.get("SC_CORPUS") or os.path.join(ROOT, "..", "shared", "corpus")
    if not os.access(program, os.X_OK):
        raise BenchError(f"figure 10: no {program}: build first")
    if not os.path.isdir(corpus):
        raise BenchError(f"figure 10: no corpus at {corpus} (set SC_CORPUS)")
    argv = [program, "--rounds", "3" if args.quick else "10", "--corpus", os.path.abspath(corpus)]
    note_command(10, " ".join(argv))
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=1800).stdout
    for line in out.splitlines():
        if not line.startswith("{"):
            log("  10 " + line)
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- table


def med(rounds, key, index=None):
    return bl.median_of(bl.column(rounds, key, index))


def rate(v):
    return "n/a" if v is None else f"{v:,.0f} msgs/s"


def ms(v):
    return "n/a" if v is None else f"{v:,.1f} ms" if v >= 10 else f"{v:.2f} ms"


def secs(v):
    return "n/a" if v is None else f"{v:.2f} s"


def mark(ok):
    return "" if ok is None else ("✓" if ok else "✗")


def build_rows(results):
    rows = []  # figure, what, stagecoach, postfix, ratio, ceiling, target
    ceiling = med(results.get(1, []), "ceiling")
    postfix = med(results.get(2, []), "postfix")
    ceilings = bl.column(results.get(1, []), "ceiling")
    postfixes = bl.column(results.get(2, []), "postfix")
    n = f"{args.messages:,}"

    def share(values, who="sc"):
        x = bl.median_ratio(values, ceilings)
        return f"{rate(ceiling)} ({who} {x:.0%})" if x else rate(ceiling)

    def ratio(scs, pfs, lower_better=False):
        """Times better than Postfix, the median of the rounds' own ratios."""
        x = bl.median_ratio(pfs, scs) if lower_better else bl.median_ratio(scs, pfs)
        return ("-", None) if x is None else (f"{x:.2f}×", x)

    if 1 in results:
        rows.append(("1", f"ceiling: smtp-source → smtp-sink, {n} × 4 KiB, {args.sessions} sessions",
                     "-", "-", "-", rate(ceiling), ""))
        load = med(results[1], "load_cpu")
        if load is not None:
            # in figures 3 and 4 the same two programs share the two CPUs with the daemon
            rows.append(("1", "  smtp-source's + smtp-sink's CPU per message (user + system)",
                         "-", "-", "-", f"{load:.0f} µs", ""))
    if 2 in results:
        rows.append(("2", f"anchor: smtp-source → Postfix (fsynced queue) → smtp-sink, {n}",
                     "-", rate(postfix), "-", share(postfixes, "Postfix"), ""))
    if 3 in results:
        scs = bl.column(results[3], "sc")
        sc = med(results[3], "sc")
        text, x = ratio(scs, postfixes)
        of_ceiling = bl.median_ratio(scs, ceilings)
        target = None if x is None or of_ceiling is None else (x >= 10 and of_ceiling >= 0.40)
        rows.append(("3", f"decorate;deliver via [ingress] smtp=, end to end, {n}", rate(sc),
                     rate(postfix), text, share(scs), f"≥10× and ≥40% {mark(target)}"))
        cpu = med(results[3], "cpu")
        rows.append(("3", "  its daemon's CPU per message, every thread (user + system)",
                     "-" if cpu is None else f"{cpu:.0f} µs", "-", "-", "-",
                     f"~300 µs {mark(None if cpu is None else cpu <= 300)}"))
        sc = med(results[3], "inject")
        rows.append(("3", f"decorate;deliver via `stagecoach inject`, 8 callers, {args.inject:,}",
                     rate(sc), "-", "-", "-", ""))
    if 4 in results:
        scs = bl.column(results[4], "sc")
        text, x = ratio(scs, postfixes)
        rows.append(("4", f"decorate;archive;deliver via SMTP, end to end, {n}",
                     rate(med(results[4], "sc")), rate(postfix), text, share(scs), ""))
    if 5 in results:
        sc, pf = med(results[5], "sc"), med(results[5], "postfix")
        text, x = ratio(bl.column(results[5], "sc"), bl.column(results[5], "postfix"))
        rows.append(("5", f"retry: 450 twice then 250 (C receiver, both), {args.retry:,}; "
                     "retry delay 1 s both", rate(sc), rate(pf), text, "-",
                     f"≥10× {mark(None if x is None else x >= 10)}"))
    if 6 in results:
        floor = results[6]
        for index, what in ((0, "median"), (1, "p99")):
            sc, pf = med(floor, "sc", index), med(floor, "postfix", index)
            text, _ = ratio(bl.column(floor, "sc", index), bl.column(floor, "postfix", index),
                            lower_better=True)
            target = f"≤5 ms {mark(None if sc is None else sc <= 5)}" if index == 0 else ""
            rows.append(("6", f"idle latency SMTP-in → at the sink, {what} of {args.latency}",
                         ms(sc), ms(pf), text, "direct: " + ms(med(floor, "floor", index)), target))
    if 7 in results:
        sc, pf = med(results[7], "sc"), med(results[7], "postfix")
        text, x = ratio(bl.column(results[7], "sc"), bl.column(results[7], "postfix"), lower_better=True)
        rows.append(("7", f"fan-out: 1 message → {args.fanout:,} recipients / {args.domains} "
                     "domains, until all at the sink", secs(sc), secs(pf), text, "-",
                     f"≥2× {mark(None if x is None else x >= 2)}"))
    if results.get(8) and results[8][0]:
        small, big = results[8][0]["small"], results[8][0]["big"]
        for key, what in (("claim", "run --once: claim the 64 due, decorate, exit"),
                          ("status", "stagecoach status"), ("list", "stagecoach list"),
                          ("show", "stagecoach show ID"), ("start", "stagecoach run until /healthz"),
                          ("overview", "overview: GET /api/v1/status + /api/v1/mailers"),
                          ("page", "GET /api/v1/messages?state=deferred&limit=50")):
            b, s = big.get(key), small.get(key)
            x = b / s if b and s else None
            target = f"≤2× {mark(None if x is None else x <= 2)}" if key != "start" else ""
            rows.append(("8", f"{what}, {args.scale:,} deferred", ms(b), "-",
                         f"{x:.2f}× of {args.scale_small:,}" if x else "-",
                         f"at {args.scale_small:,}: {ms(s)}", target))
        rows.append(("8", f"daemon RSS (peak) with {args.scale:,} deferred",
                     f"{big['rss']:.1f} MB ({big['hwm']:.1f})", "-",
                     f"{big['rss'] / small['rss']:.2f}× of {args.scale_small:,}",
                     f"at {args.scale_small:,}: {small['rss']:.1f} MB ({small['hwm']:.1f})",
                     f"≤64 MB {mark(big['rss'] <= 64)}"))
    if results.get(9) and results[9][0]:
        r = results[9][0]
        total = r.get("total")
        rows.append(("9", f"instructions per message, all threads (callgrind, {args.callgrind} msgs "
                     "via SMTP, decorate;deliver)", f"{total:,.0f}" if total else "n/a", "-", "-", "-", ""))
        for label, value, missing in r.get("groups", []):
            rows.append(("9", f"  {label}, inclusive", f"{value:,.0f}" if value else
                         "n/a (" + ", ".join(missing) + " not in the profile)", "-", "-", "-", ""))
        for obj, value in r.get("objects", []):
            rows.append(("9", f"  self in {obj}", f"{value:,.0f}", "-", "-", "-", ""))
    if results.get(10) and results[10][0]:
        r = results[10][0]

        def cost(key):
            return f"{r[key]:,.0f} µs ({1e6 / r[key]:,.0f} msgs/s)"

        corpus = f"corpus mean of {r['signable']} messages"
        for key, what in (("decorate_us", f"decorate alone, corpus mean of {r['messages']} messages"),
                          ("rsa_us", f"sign rsa-2048, {corpus}"),
                          ("ed25519_us", f"sign ed25519, {corpus}"),
                          ("rsa_small_us", "sign rsa-2048, a 4 KiB post"),
                          ("ed25519_small_us", "sign ed25519, a 4 KiB post")):
            rows.append(("10", f"{what} (one thread)", cost(key), "-", "-", "-", ""))
    return rows


def render(rows):
    head = ("#", "figure", "stagecoach", "Postfix", "ratio", "ceiling", "target")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---"]) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def git_commit():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


WAKE = "thread hand-off not measured"


def thread_wake():
    """What one thread hand-off costs here (tests/bench/bench-wake.c): on a VM whose idle
    CPUs halt, waking a thread on the other CPU can cost 20x waking it on the same one,
    and the daemon's CPU per message moves with it."""
    program = os.path.join(os.path.abspath(args.build), "tests", "bench-wake")
    try:
        out = subprocess.run([program, "5000"], capture_output=True, text=True, check=True,
                             timeout=120).stdout
        w = json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return "thread hand-off not measured (no tests/bench-wake)"
    across = f"{w['cross_cpu']:.0f} µs of CPU across two CPUs, " if w["cross_cpu"] >= 0 else ""
    return f"a thread hand-off round trip costs {across}{w['same_cpu']:.1f} µs on one CPU (bench-wake)"


def machine(end_load):
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1024 / 1024
    return (f"{os.cpu_count()} CPUs (nproc), {mem:.1f} GiB memory, Linux {platform.release()}; "
            f"{WAKE}; "
            f"load average at start {' '.join(f'{x:.2f}' for x in START['load'])}, at end "
            f"{' '.join(f'{x:.2f}' for x in end_load)}; {START['date']}; git {git_commit()}")


def main():
    if not os.access(BINARY, os.X_OK):
        sys.exit(f"no {BINARY}: build first (scripts/bench.sh does)")
    log(f"command: {COMMAND}")
    global WAKE
    WAKE = thread_wake()
    log(WAKE)
    log(f"figures: {','.join(map(str, sorted(FIGURES)))}; messages {args.messages:,}; rounds "
        f"{args.rounds}; Postfix: {'yes' if ROOT_OK else 'no (needs root)'}; work: {WORK}")
    plan = {1: fig1, 2: fig2, 3: fig3, 4: fig4, 5: fig5, 6: fig6, 7: fig7, 8: fig8, 9: fig9,
            10: fig10}
    once = {8, 9, 10}  # 8: a 1M spool is built once; 9: instruction counts do not drift;
    # 10: bench-sign repeats on its own
    # Rounds outside, figures inside: each round runs every figure once, so a round's
    # Postfix anchor (2), ceiling (1) and stagecoach figures are minutes apart, not a
    # whole run; the ratios are then taken round by round (build_rows).  A figure that
    # failed in a round keeps its place with {} so the rounds stay aligned.
    results = {figure: [] for figure in FIGURES}
    try:
        for round_index in range(args.rounds):
            for figure in sorted(FIGURES):
                if figure in once and round_index > 0:
                    continue
                log(f"figure {figure}, round {round_index + 1}:" if args.rounds > 1 and figure not in once
                    else f"figure {figure}:")
                try:
                    results[figure].append(plan[figure]())
                except (BenchError, subprocess.CalledProcessError, subprocess.TimeoutExpired,
                        OSError) as e:
                    results[figure].append({})
                    notes.append(f"figure {figure} failed: {e}")
                    log(f"  figure {figure} failed: {e}")
    finally:
        if os.environ.get("SC_BENCH_KEEP"):
            log(f"kept: {WORK}")
        else:
            shutil.rmtree(WORK, ignore_errors=True)
    rows = build_rows(results)
    end_load = os.getloadavg()
    table = render(rows)
    header = (f"medians of {args.rounds} round(s), each round running every figure once (figures 8, "
              "9 and 10: one run); ratio = how many times better than Postfix (rates: stagecoach / "
              "Postfix; times: Postfix / stagecoach), the median of the rounds' own ratios, as is "
              "the share of the ceiling; ceiling = smtp-source → smtp-sink in the same round")
    print()
    print(header)
    print(table)
    for n in notes:
        print("note: " + n)
    print("machine: " + machine(end_load))
    print("commands (first round; ports change every round):")
    for figure in sorted(commands):
        for line in commands[figure]:
            print(f"  [{figure}] {line}")
    if args.write:
        path = args.write if os.path.isabs(args.write) else os.path.join(ROOT, args.write)
        with open(path, "w") as f:
            f.write(f"# stagecoach performance\n\nRecorded {datetime.date.today().isoformat()} by "
                    f"`{COMMAND}` (scripts/bench.sh; what each figure measures: doc/DECISIONS.md, "
                    "\"bench.sh (issue 9)\").\n\n")
            f.write(f"Machine: {machine(end_load)}.\n\n{header}.\n\n{table}\n")
            if notes:
                f.write("\n" + "\n".join(f"- note: {n}" for n in notes) + "\n")
            f.write("\nCommands (first round):\n\n")
            for figure in sorted(commands):
                for line in commands[figure]:
                    f.write(f"- [{figure}] `{line}`\n")
        print(f"written: {path}")


main()
