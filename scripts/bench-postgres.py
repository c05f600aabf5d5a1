#!/usr/bin/env python3
"""Throughput of 1, 2 and 3 runners on one PostgreSQL spool, beside SQLite
(issue 10, section 3).

A backlog of N messages (R recipients each, one domain: one SMTP
transaction per message, pipeline=deliver or --pipeline) is made once per backend and
copied for every run: PostgreSQL by CREATE DATABASE ... TEMPLATE, the
SQLite spool folder by a file copy.  The backlog: --inject messages through
the real `stagecoach inject` (no daemon running: inject writes the spool),
then their rows copied in SQL (messages, bodies, recipients; new queue
ids) up to N, because one inject process per message costs 0.3 s and more
on two busy cores; --inject N injects them all.  Each run starts K
`stagecoach run` daemons that share nothing but the database (own config,
own state-dir) and times from their start until the spool counts all N
done (a count of messages in state done, polled every 0.1 s over one
open psql session or sqlite3 connection).  Messages per second = N / time.

Two relays:
  slow  a small asyncio SMTP receiver in this script that answers the end of
        DATA after --delay-ms (20 ms): delivery is the limit, each runner's
        ceiling is max-connections / delay (1 / 20 ms = 50 msgs/s; with 4
        connections, 200 msgs/s per runner is more than two shared cores
        carry, and the CPU would be the limit, not the relay)
        (smtp-sink's -w takes whole seconds)
  fast  Postfix's smtp-sink: where the spool (and the CPU) is the limit

The private PostgreSQL 15 is started as tests/sc-test-postgres.c starts it
(initdb into a temporary folder, 127.0.0.1 and a unix socket, fsync on, as
the postgres user when run as root) and stopped by PID.  As root the whole
script runs in private PID and network namespaces (benchlib).

    scripts/bench-postgres.py [--quick] [--messages N] [--recipients R]
        [--runners 1,2,3] [--pipeline deliver] [--relays slow,fast] [--delay-ms 20] [--workers W]
        [--slow-connections 1] [--connections 4] [--inject M] [--repeat K]
        [--build DIR]
"""
import argparse
import asyncio
import concurrent.futures
import glob
import sqlite3
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "bench"))
import benchlib as bl  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--quick", action="store_true", help="a small run: 300 messages, one pass")
parser.add_argument("--messages", type=int, default=3000)
parser.add_argument("--recipients", type=int, default=1)
parser.add_argument("--inject", type=int, default=100,
                    help="messages through `stagecoach inject`; the rest are SQL copies of them")
parser.add_argument("--runners", default="1,2,3", help="PostgreSQL runner counts")
parser.add_argument("--pipeline", default="deliver",
                    help="the list's pipeline (decorate;deliver: decorate runs on deliver's thread, "
                    "a second in-handler mark per message)")
parser.add_argument("--relays", default="slow,fast")
parser.add_argument("--delay-ms", type=float, default=20.0, help="the slow relay's wait before its DATA reply")
parser.add_argument("--workers", type=int, default=4)
parser.add_argument("--connections", type=int, default=4,
                    help="max-connections of each runner's mailer, fast relay")
parser.add_argument("--slow-connections", type=int, default=1,
                    help="max-connections of each runner's mailer, slow relay: small enough that the relay, not "
                         "two shared cores, is the limit (1 / 20 ms = 50 msgs/s per runner)")
parser.add_argument("--repeat", type=int, default=1, help="runs per cell; the median is shown")
parser.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
args = parser.parse_args()
if args.quick:
    args.messages = min(args.messages, 300)
    args.inject = min(args.inject, 50)
    args.repeat = 1
args.inject = max(1, min(args.inject, args.messages))
COPIES = max(1, args.messages // args.inject)
args.messages = args.inject * COPIES  # a whole number of copies
runner_counts = [int(n) for n in args.runners.split(",") if n]
relays = [r for r in args.relays.split(",") if r]
for relay in relays:
    if relay not in ("slow", "fast"):
        sys.exit(f"unknown relay {relay!r}: slow or fast")

BINARY = os.path.abspath(os.path.join(args.build, "stagecoach"))
LIST = "bench.example.org"
COMMAND = " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])

bl.enter_namespace("SC_BENCH_PG_INNER")
if not os.path.exists(BINARY):
    sys.exit(f"no {BINARY}: build first (meson compile -C build)")


def pg_bindir():
    """As sc-test-postgres.c: $SC_TEST_PG_BINDIR, pg_config --bindir, the newest Debian one."""
    candidates = [os.environ.get("SC_TEST_PG_BINDIR")]
    try:
        candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
    except FileNotFoundError:
        pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: float(p.split("/")[-2]), reverse=True)
    for d in candidates:
        if d and os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "postgres")):
            return d
    sys.exit("no PostgreSQL server binaries (initdb, postgres): apt-get install postgresql")


class Postgres:
    """A private server: initdb (superuser "stagecoach", trust, C locale) and
    postgres on a free loopback port with its socket in the folder, as the
    postgres user when we are root; stopped by its PID."""

    def __init__(self, work):
        self.bindir = pg_bindir()
        self.dir = os.path.join(work, "pg")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.dir)
        self.port = bl.free_port()
        self.user = None
        if bl.is_root():
            self.user = pwd.getpwnam("postgres")
            os.chmod(work, 0o755)
            shutil.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "stagecoach", "-A", "trust",
                   "-E", "UTF8", "--locale=C", "--no-sync"], check=True)
        self.log = open(os.path.join(self.dir, "postgres.log"), "ab")
        self.process = subprocess.Popen(
            [os.path.join(self.bindir, "postgres"), "-D", self.data, "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=100",
             "-c", "logging_collector=off"],
            stdout=self.log, stderr=self.log, preexec_fn=self._drop)
        deadline = time.monotonic() + 30
        while self.psql("postgres", "SELECT 1", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"postgres did not start; see {self.dir}/postgres.log")
            time.sleep(0.1)
        self.version = self.psql("postgres", "SHOW server_version").stdout.strip()

    def _drop(self):
        if self.user is not None:
            os.setgroups([])
            os.setgid(self.user.pw_gid)
            os.setuid(self.user.pw_uid)

    def _run(self, argv, **kw):
        return subprocess.run(argv, capture_output=True, text=True, preexec_fn=self._drop, **kw)

    def psql(self, db, sql, check=True):
        """A fixed statement (no values from outside the script)."""
        return subprocess.run([os.path.join(self.bindir, "psql"), "-h", self.dir, "-p", str(self.port),
                               "-U", "stagecoach", "-d", db, "-Atqc", sql],
                              capture_output=True, text=True, check=check)

    def uri(self, db):
        return f"postgresql://stagecoach@127.0.0.1:{self.port}/{db}"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def slow_relay(delay):
    """benchlib's SMTP receiver refusing nothing and answering the end of DATA after
    @delay seconds, as a relay whose disk or network takes that long."""
    relay = bl.Refuser(refusals=0, delay=delay)
    relay.argv = [f"(in this script: asyncio SMTP, DATA answered after {delay * 1000:.0f} ms)"]
    return relay


def config_text(spool, state_dir, relay_port, connections):
    text = (f"[stagecoach]\nspool={spool}\n" + (f"state-dir={state_dir}\n" if state_dir else "")
            + f"workers={args.workers}\nrescan=1s\n"
            "[admin]\nlisten=\n"
            f"[mailer:relay]\nurl=smtp://127.0.0.1:{relay_port}\nstarttls=off\n"
            f"max-connections={connections}\nmax-recipients=1000\n"
            f"[list:{LIST}]\npipeline={args.pipeline}\nbounces=bounces@{LIST}\n")
    return text


def write_config(folder, spool, state_dir, relay_port, connections=1):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "stagecoach.conf")
    with open(path, "w") as f:
        f.write(config_text(spool, state_dir, relay_port, connections))
    return path


def inject_backlog(config, label):
    """--inject messages through `stagecoach inject`, 8 at a time (no daemon:
    it writes the spool itself)."""
    env = dict(os.environ, STAGECOACH_CONFIG=config)

    def one(i):
        body = (f"From: poster@bench.example\r\nTo: {LIST}\r\nSubject: pg bench {i}\r\n"
                f"Message-ID: <pgbench.{i}@bench.example>\r\n\r\n"
                + "line of text, about four kilobytes in all\r\n" * 95).encode()
        rcpts = [f"m{i}.r{r}@rcpt.bench.example" for r in range(args.recipients)]
        for attempt in range(50):
            done = subprocess.run([BINARY, "inject", "--list", LIST] + rcpts, input=body, env=env,
                                  capture_output=True)
            if done.returncode != 75:
                break
            time.sleep(0.1)
        if done.returncode != 0:
            raise RuntimeError(f"inject ({label}) exited {done.returncode}: {done.stderr.decode()}")

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(args.inject)))
    print(f"# backlog {label}: {args.inject} messages × {args.recipients} recipients injected in "
          f"{time.monotonic() - t0:.1f} s" + (f", copied in SQL to {args.messages}" if COPIES > 1 else ""),
          flush=True)


DONE = "SELECT count(*) FROM messages WHERE state = 'done'"


class PsqlSession:
    """One psql process kept open: a count costs a round trip, not a process."""

    def __init__(self, db):
        self.process = subprocess.Popen([os.path.join(pg.bindir, "psql"), "-h", pg.dir, "-p", str(pg.port),
                                         "-U", "stagecoach", "-d", db, "-Atq", "-v", "ON_ERROR_STOP=0"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def count(self):
        self.process.stdin.write(DONE + ";\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        return int(line) if line.strip().isdigit() else -1

    def close(self):
        self.process.stdin.close()
        self.process.wait(10)


class SqliteSession:
    def __init__(self, path):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)

    def count(self):
        try:
            return self.db.execute(DONE).fetchone()[0]
        except sqlite3.OperationalError:
            return -1

    def close(self):
        self.db.close()


def multiply_pg(db):
    """COPIES - 1 more copies of every row of the injected backlog, in one
    transaction (the state counts follow through the spool's own triggers)."""
    columns = pg.psql(db, "SELECT string_agg(column_name, ',' ORDER BY ordinal_position)"
                          " FROM information_schema.columns WHERE table_name = 'messages'"
                          " AND column_name NOT IN ('id', 'queue_id')").stdout.strip()
    rcpt_columns = pg.psql(db, "SELECT string_agg(column_name, ',' ORDER BY ordinal_position)"
                               " FROM information_schema.columns WHERE table_name = 'recipients'"
                               " AND column_name <> 'message_id'").stdout.strip()
    source_columns = ",".join("s." + c for c in columns.split(","))
    rcpt_source = ",".join("r." + c for c in rcpt_columns.split(","))
    pg.psql(db, f"""BEGIN;
CREATE TEMP TABLE copies AS SELECT s.id AS source, s.queue_id || 'c' || k AS queue_id
  FROM messages s, generate_series(1, {COPIES - 1}) k;
INSERT INTO messages (queue_id, {columns})
  SELECT c.queue_id, {source_columns} FROM copies c JOIN messages s ON s.id = c.source;
INSERT INTO bodies (message_id, raw)
  SELECT n.id, b.raw FROM copies c JOIN messages n ON n.queue_id = c.queue_id JOIN bodies b ON b.message_id = c.source;
INSERT INTO recipients (message_id, {rcpt_columns})
  SELECT n.id, {rcpt_source} FROM copies c JOIN messages n ON n.queue_id = c.queue_id
  JOIN recipients r ON r.message_id = c.source;
COMMIT;""")


def multiply_sqlite(folder):
    db = sqlite3.connect(os.path.join(folder, "spool.db"), isolation_level=None)
    columns = [r[1] for r in db.execute("PRAGMA table_info(messages)") if r[1] not in ("id", "queue_id")]
    rcpt_columns = [r[1] for r in db.execute("PRAGMA table_info(recipients)") if r[1] != "message_id"]
    db.execute("BEGIN IMMEDIATE")
    sources = db.execute("SELECT id, queue_id FROM messages").fetchall()
    for k in range(1, COPIES):
        for source, queue_id in sources:
            new = db.execute(f"INSERT INTO messages (queue_id, {','.join(columns)}) SELECT ?, {','.join(columns)}"
                             " FROM messages WHERE id = ?", (f"{queue_id}c{k}", source)).lastrowid
            db.execute("INSERT INTO bodies (message_id, raw) SELECT ?, raw FROM bodies WHERE message_id = ?",
                       (new, source))
            db.execute(f"INSERT INTO recipients (message_id, {','.join(rcpt_columns)}) SELECT ?, "
                       f"{','.join(rcpt_columns)} FROM recipients WHERE message_id = ?", (new, source))
    db.execute("COMMIT")
    db.close()


def start_runner(config, log_path):
    log = open(log_path, "ab")
    process = subprocess.Popen([BINARY, "run"], env=dict(os.environ, STAGECOACH_CONFIG=config),
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process


def timed_run(configs, session, label, limit):
    """Start one runner per config, wait for N done; msgs/s, 0 when not all done."""
    folder = os.path.dirname(configs[0])
    t0 = time.monotonic()
    load = os.getloadavg()[0]
    runners = [start_runner(c, os.path.join(os.path.dirname(c), "run.log")) for c in configs]
    seconds = None
    try:
        deadline = t0 + limit
        while time.monotonic() < deadline:
            if session.count() >= args.messages:
                seconds = time.monotonic() - t0
                break
            for r in runners:
                if r.poll() is not None:
                    sys.exit(f"{label}: a runner exited ({r.returncode}); see {folder}/run.log")
            time.sleep(0.1)
    finally:
        for r in runners:
            bl.stop(r)
        session.close()
    rate = args.messages / seconds if seconds else 0
    print(f"#   {label}: {seconds:.2f} s, {rate:.0f} msgs/s (load average at start {load:.1f})"
          if seconds else f"#   {label}: not all done within {limit} s", flush=True)
    return rate


WORK = tempfile.mkdtemp(prefix="sc-bench-pg-")
pg = None
relay_objects = []
results = {}  # (relay, column) -> [rates]
try:
    if bl.is_root():
        os.chmod(WORK, 0o755)
    pg = Postgres(WORK)
    print(f"# {COMMAND}")
    print(f"# PostgreSQL {pg.version} ({pg.bindir}), stagecoach {BINARY}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print(f"# {args.messages} messages × {args.recipients} recipients (4 KiB, one transaction each), "
          f"pipeline={args.pipeline}, workers={args.workers}",
          flush=True)

    # the backlogs, made once; the relay port in these configs is unused
    pg.psql("postgres", "CREATE DATABASE seed")
    inject_backlog(write_config(os.path.join(WORK, "inject-pg"), pg.uri("seed"),
                                os.path.join(WORK, "inject-pg", "state"), 9), "PostgreSQL")
    seed_sqlite = os.path.join(WORK, "seed-sqlite")
    inject_backlog(write_config(os.path.join(WORK, "inject-sqlite"), seed_sqlite, None, 9), "SQLite")
    if COPIES > 1:
        multiply_pg("seed")
        multiply_sqlite(seed_sqlite)
    check = sqlite3.connect(os.path.join(seed_sqlite, "spool.db"))
    queued_sqlite = check.execute("SELECT count(*) FROM messages WHERE state = 'queued'").fetchone()[0]
    check.close()
    for label, n in (("PostgreSQL", pg.psql("seed", "SELECT count(*) FROM messages WHERE state = 'queued'")
                      .stdout.strip()), ("SQLite", queued_sqlite)):
        if int(n) != args.messages:
            sys.exit(f"the {label} backlog holds {n} messages, not {args.messages}")

    run_no = 0
    for relay_name in relays:
        if relay_name == "slow":
            relay = slow_relay(args.delay_ms / 1000)
            title = f"slow relay (DATA +{args.delay_ms:.0f} ms)"
            connections = args.slow_connections
        else:
            relay = bl.Sink(WORK, "sink")
            title = "fast relay (smtp-sink)"
            connections = args.connections
        relay_objects.append(relay)
        print(f"# {title}: {' '.join(relay.argv)}; max-connections={connections} per runner", flush=True)
        limit = max(120, args.messages / 20)
        for rep in range(args.repeat):
            # SQLite, one runner: a copy of the seed folder
            run_no += 1
            folder = os.path.join(WORK, f"run{run_no}-sqlite")
            spool = os.path.join(folder, "spool")
            shutil.copytree(seed_sqlite, spool, ignore=shutil.ignore_patterns("wake", "runners", "*.sock"))
            config = write_config(folder, spool, None, relay.port, connections)
            results.setdefault((relay_name, "SQLite 1"), []).append(
                timed_run([config], SqliteSession(os.path.join(spool, "spool.db")),
                          f"{relay_name} SQLite 1 runner", limit))
            for k in runner_counts:
                run_no += 1
                db = f"run{run_no}"
                pg.psql("postgres", f"CREATE DATABASE {db} TEMPLATE seed")
                configs = [write_config(os.path.join(WORK, f"run{run_no}-pg-r{i}"), pg.uri(db),
                                        os.path.join(WORK, f"run{run_no}-pg-r{i}", "state"), relay.port,
                                        connections)
                           for i in range(k)]
                results.setdefault((relay_name, f"PG {k}"), []).append(
                    timed_run(configs, PsqlSession(db), f"{relay_name} PostgreSQL {k} runner{'s' if k > 1 else ''}",
                              limit))
                pg.psql("postgres", f"DROP DATABASE {db}")
        relay.stop()
        relay_objects.remove(relay)

    # the table
    columns = ["SQLite 1"] + [f"PG {k}" for k in runner_counts]
    median = {key: sorted(v)[len(v) // 2] for key, v in results.items()}
    head = f"{'msgs/s to done':<30}" + "".join(f"{c:>10}" for c in columns)
    ratios = [k for k in runner_counts if k != 1 and 1 in runner_counts]
    head += "".join(f"{f'PG{k}/PG1':>10}" for k in ratios)
    print()
    print(head)
    for relay_name in relays:
        title = f"slow relay (DATA +{args.delay_ms:.0f} ms)" if relay_name == "slow" else "fast relay (smtp-sink)"
        line = f"{title:<30}" + "".join(f"{median.get((relay_name, c), 0):>10.0f}" for c in columns)
        base = median.get((relay_name, "PG 1"), 0)
        for k in ratios:
            line += f"{(median.get((relay_name, f'PG {k}'), 0) / base if base else 0):>9.2f}×"
        print(line)
    if "slow" in relays:
        print(f"(slow relay ceiling: {args.slow_connections} connection(s) / {args.delay_ms:.0f} ms = "
              f"{args.slow_connections * 1000 / args.delay_ms:.0f} msgs/s per runner)")
        base = median.get(("slow", "PG 1"), 0)
        two = median.get(("slow", "PG 2"), 0)
        if base and two:
            print(f"target ≥ 1.70× from 1 to 2 runners with the slow relay: {two / base:.2f}× "
                  f"({'met' if two / base >= 1.7 else 'NOT met'})")
    if args.repeat > 1:
        print(f"(median of {args.repeat} runs per cell; all runs: "
              + "; ".join(f"{r} {c}: " + ",".join(f"{x:.0f}" for x in v) for (r, c), v in results.items()) + ")")
finally:
    for relay in relay_objects:
        relay.stop()
    if pg is not None:
        pg.stop()
    shutil.rmtree(WORK, ignore_errors=True)
