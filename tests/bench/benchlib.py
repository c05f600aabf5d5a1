"""Shared pieces of the benchmarks (scripts/bench.sh, scripts/bench-ingress.py).

A private Postfix, smtp-sink / smtp-source, a silent relay, a small real
SMTP receiver that refuses each message a set number of times, the idle
latency method and the private PID + network namespace every benchmark
process lives in.  Everything listens on 127.0.0.1.
"""
import asyncio
import math
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time

LIST = "bench.example.org"

# about 4 KiB, one recipient; the same bytes for every client this module has
BODY = ("From: a@example.org\r\nTo: bench@example.org\r\nSubject: ingress\r\n\r\n"
        + "line of text, about four kilobytes in all\r\n" * 95).encode()


def column(rounds, key, index=None):
    """@key's value (its @index-th item when given) in each round's dict, None where a
    round has none (a figure that failed keeps its round's place)."""
    return [None if r.get(key) is None else r[key] if index is None else r[key][index]
            for r in rounds]


def median_of(values):
    """The median of the values measured (not None), None if there are none."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def median_ratio(numerators, denominators):
    """The median of the round-by-round ratios numerators[i] / denominators[i], over the
    rounds where both were measured (None or 0 is a missing figure); None if no round has
    both.  On a machine whose speed drifts within a run, two figures taken in the same round,
    minutes apart, compare far better than their medians over the whole run do."""
    ratios = [a / b for a, b in zip(numerators, denominators) if a and b]
    return statistics.median(ratios) if ratios else None


def is_root():
    return os.geteuid() == 0


def enter_namespace(env_flag="SC_BENCH_INNER"):
    """Re-exec the running script in private PID + network namespaces (as root):
    every process it starts dies with it and only its own loopback exists.
    Returns True inside the namespace (loopback brought up)."""
    if os.environ.get(env_flag):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return True
    if is_root() and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--pid", "--fork", "--net", "true"], capture_output=True)
        if probe.returncode == 0:
            os.environ[env_flag] = "1"
            sys.stdout.flush()
            os.execvp("unshare", ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
                                  "--net", sys.executable] + sys.argv)
    return False


def spawn_one(argv, env, data=b""):
    """Wall seconds of one process, its stdin a pipe holding @data (at most a
    pipe's 64 KiB), its stdout and stderr discarded; raises if it fails."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(r)
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
    return elapsed


def spawn_callers(argv_for, data_for, callers, total, env):
    """@total processes, argv_for(n) with data_for(n) on its stdin for n in
    0..total-1, started by @callers callers, each one after the other
    (caller c takes c, c + callers, …): (processes per second, median wall ms
    of one).  Each caller is a process of its own,
    as the programs that call `inject` are: 8 threads of one Python process
    took turns on its interpreter lock, which held even /bin/true to ~865/s
    where 8 processes start ~1,300-1,500/s on the same machine."""
    readers, pids = [], []
    t0 = time.perf_counter()
    for caller in range(callers):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the caller: its walls (ms) on the pipe, exit 1 on a failure
            os.close(r)
            code = 0
            try:
                walls = [spawn_one(argv_for(n), env, data_for(n)) * 1000
                         for n in range(caller, total, callers)]
                os.write(w, " ".join(f"{x:.3f}" for x in walls).encode())
            except BaseException as e:  # noqa: B036 — a forked child must not return
                os.write(2, f"caller {caller}: {e}\n".encode())
                code = 1
            os._exit(code)
        os.close(w)
        readers.append(r)
        pids.append(pid)
    walls, failed = [], 0
    for r, pid in zip(readers, pids):
        chunks = []
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        walls += [float(x) for x in b"".join(chunks).split()]
        failed += os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0
    elapsed = time.perf_counter() - t0
    if failed:
        raise RuntimeError(f"{failed} of {callers} callers failed")
    return total / elapsed, statistics.median(walls)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, process=None, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def cpu_seconds(pid):
    """Process @pid's CPU so far, every thread, user + system (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process, timeout=30):
    """SIGTERM, then SIGKILL after @timeout: this one process, by its PID."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Sink:
    """smtp-sink on a free loopback port.  dump=True writes each transaction to a
    file in self.dir (one X-Rcpt-Args line per recipient); exit_after=N makes it
    exit after N messages, which is how the throughput figures see the end."""

    def __init__(self, work, name, dump=False, exit_after=None):
        self.dir = None
        self.port = free_port()
        argv = ["smtp-sink"] + (["-u", "nobody"] if is_root() else [])
        if dump:
            self.dir = os.path.join(work, name)
            os.makedirs(self.dir)
            if is_root():
                shutil.chown(self.dir, "nobody")
            argv += ["-d", os.path.join(self.dir, "%H%M%S.")]
        if exit_after is not None:
            argv += ["-M", str(exit_after)]
        argv += [f"127.0.0.1:{self.port}", "256"]
        self.argv = argv
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # the probe connection sends no MAIL: it counts as no message, dumps nothing
        if not wait_port(self.port, self.process):
            sys.exit("smtp-sink did not start: " + " ".join(argv))

    def wait_exit(self, timeout):
        """Seconds-since-epoch-free: the monotonic time the sink exited, or None."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic()

    def stop(self):
        stop(self.process)


class Silent:
    """A relay that accepts connections and never answers (nothing is delivered)."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(4096)
        self.port = self.socket.getsockname()[1]

    def stop(self):
        self.socket.close()


class Refuser:
    """A small real SMTP receiver on loopback (asyncio, in a thread): answers 450 after
    the data to the first @refusals deliveries of each (Message-ID, recipients) and 250
    from then on, each answer to the end of DATA after @delay seconds (a relay whose
    disk or network takes that long).  self.accepted counts the 250s; self.refused the
    450s."""

    def __init__(self, refusals=2, delay=0.0):
        self.refusals = refusals
        self.delay = delay
        self.seen = {}
        self.accepted = 0
        self.refused = 0
        self.accept_times = []  # time.monotonic() of each 250
        self.lock = threading.Lock()
        self.all_accepted = threading.Event()
        self.expected = None
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = None

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._session, "127.0.0.1", 0, backlog=1024))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            # sessions still open end here, before the loop closes
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.close()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def expect(self, count):
        with self.lock:
            self.expected = count
            if self.accepted >= count:
                self.all_accepted.set()

    async def _session(self, reader, writer):
        w = writer.write
        w(b"220 refuser.localdomain ESMTP\r\n")
        rcpts = []
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                verb = line[:4].upper()
                if verb in (b"EHLO",):
                    w(b"250-refuser.localdomain\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000000\r\n")
                elif verb == b"HELO":
                    w(b"250 refuser.localdomain\r\n")
                elif verb == b"MAIL":
                    rcpts = []
                    w(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    rcpts.append(line[8:].strip().lower())
                    w(b"250 2.1.5 ok\r\n")
                elif verb == b"DATA":
                    w(b"354 go ahead\r\n")
                    await writer.drain()
                    message_id = b""
                    in_header = True
                    while True:
                        data = await reader.readline()
                        if not data or data == b".\r\n" or data == b".\n":
                            break
                        if in_header:
                            if data in (b"\r\n", b"\n"):
                                in_header = False
                            elif data[:11].lower() == b"message-id:":
                                message_id = data[11:].strip()
                    key = (message_id, tuple(rcpts))
                    if self.delay > 0:
                        await asyncio.sleep(self.delay)
                    with self.lock:
                        n = self.seen.get(key, 0)
                        self.seen[key] = n + 1
                        if n < self.refusals:
                            self.refused += 1
                            answer = b"450 4.7.1 try again later (bench refuser)\r\n"
                        else:
                            self.accepted += 1
                            self.accept_times.append(time.monotonic())
                            answer = b"250 2.0.0 accepted\r\n"
                            if self.expected is not None and self.accepted >= self.expected:
                                self.all_accepted.set()
                    w(answer)
                    rcpts = []
                elif verb == b"RSET":
                    rcpts = []
                    w(b"250 2.0.0 ok\r\n")
                elif verb == b"NOOP":
                    w(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    w(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    break
                else:
                    w(b"502 5.5.2 not implemented\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def stop(self):
        def close():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(close)
        self.thread.join(10)


class CRefuser:
    """Refuser's answers from tests/bench/bench-refuser.c (@program, built with the
    tree): the same keys and replies, in C, so that the receiver does not take half a
    core from the daemon it measures.  Same attributes as Refuser."""

    def __init__(self, program, refusals=2):
        self.accepted = 0
        self.refused = 0
        self.accept_times = []  # CLOCK_MONOTONIC, as time.monotonic()
        self.lock = threading.Lock()
        self.all_accepted = threading.Event()
        self.expected = None
        # stdin is a pipe only so that the receiver ends when we do
        self.process = subprocess.Popen([program, str(refusals)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        first = self.process.stdout.readline().split()
        if len(first) != 2 or first[0] != "port":
            self.stop()
            raise RuntimeError(f"{program} did not say its port: {first!r}")
        self.port = int(first[1])
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.process.stdout:
            with self.lock:
                if line.startswith("250 "):
                    self.accepted += 1
                    self.accept_times.append(float(line[4:]))
                    if self.expected is not None and self.accepted >= self.expected:
                        self.all_accepted.set()
                elif line.startswith("450"):
                    self.refused += 1

    def expect(self, count):
        with self.lock:
            self.expected = count
            if self.accepted >= count:
                self.all_accepted.set()

    def stop(self):
        stop(self.process, 10)
        self.process.stdin.close()
        if getattr(self, "thread", None) is not None:
            self.thread.join(10)


class Postfix:
    """A private Postfix (as tests/sc-test-postfix.c builds it): smtpd on a loopback
    port relaying everything to [127.0.0.1]:relay_port; @extra is appended to main.cf."""

    SERVICES = """pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n {qmgr_wakeup} 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""

    def __init__(self, work, name, relay_port, accept_only=False, extra="", qmgr_wakeup=300):
        self.dir = os.path.join(work, name)
        self.etc = os.path.join(self.dir, "etc")
        os.makedirs(self.etc)
        os.makedirs(os.path.join(self.dir, "queue"))
        os.makedirs(os.path.join(self.dir, "data"))
        os.chmod(self.dir, 0o755)
        shutil.chown(os.path.join(self.dir, "data"), "postfix", "postfix")
        self.port = free_port()
        main_cf = f"""compatibility_level = 3.6
queue_directory = {self.dir}/queue
data_directory = {self.dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench-postfix.localdomain
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
relayhost = [127.0.0.1]:{relay_port}
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
smtpd_recipient_restrictions = permit_mynetworks, reject
maillog_file = {self.dir}/maillog
maillog_file_prefixes = {self.dir}
"""
        if accept_only:
            main_cf += "smtp_helo_timeout = 300s\n"
        main_cf += extra
        self._write("main.cf", main_cf)
        self._write("master.cf", f"127.0.0.1:{self.port} inet n - n - - smtpd\n"
                    + self.SERVICES.replace("{qmgr_wakeup}", str(qmgr_wakeup)))
        started = subprocess.run(["postfix", "-c", self.etc, "start"], capture_output=True, text=True)
        if started.returncode != 0:
            sys.exit(f"postfix -c {self.etc} start failed: {started.stdout}{started.stderr}")
        if not wait_port(self.port):
            sys.exit(f"private postfix did not listen; see {self.dir}/maillog")

    def _write(self, name, text):
        path = os.path.join(self.etc, name)
        with open(path, "w") as f:
            f.write(text)
        # Postfix will not read a config file modified in the current second
        old = time.time() - 5
        os.utime(path, (old, old))

    def finished(self, n):
        """Whether the queue is empty (call once everything was accepted): every
        message handed on.  Walks Postfix's queue folders (deferred is hashed)."""
        for name in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _, _, files in os.walk(os.path.join(self.dir, "queue", name)):
                if files:
                    return False
        return True

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "abort"], capture_output=True)


def smtp_source_argv(port, messages, sessions=8, size=4096, recipients=1):
    return ["smtp-source", "-d", "-N", "-s", str(sessions), "-m", str(messages),
            "-l", str(size), "-r", str(recipients), "-f", "sender@bench.example",
            "-t", "rcpt@list.example", "-M", "bench.localdomain", f"127.0.0.1:{port}"]


def latency(port, dump_dir, label, count, pause=0.02, warmup=5):
    """SMTP-in -> written by the sink, one message at a time: (median ms, p99 ms).
    From before connect (Python smtplib) until the complete dump file of the
    smtp-sink behind @port is first seen, polling every 0.2 ms; a file's mtime
    would be rounded down to the kernel's coarse clock tick (up to 4 ms)."""
    result = []
    for i in range(-warmup, count):  # the first ones warm up (connection caches, first qmgr scan)
        before = set(os.listdir(dump_dir))
        message = BODY.replace(b"Subject: ingress", f"Message-ID: <lat-{label}-{i}-{time.time_ns()}"
                               "@bench.example>\r\nSubject: latency".encode())
        t0 = time.time_ns()
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.localdomain", timeout=30) as smtp:
            smtp.sendmail("sender@bench.example", ["rcpt@list.example"], message)
        deadline = time.monotonic() + 30
        t1 = None
        while t1 is None and time.monotonic() < deadline:
            for name in os.listdir(dump_dir):
                if name in before:
                    continue
                with open(os.path.join(dump_dir, name), "rb") as f:
                    data = f.read()
                # smtp-sink ends a dump with an empty line
                if len(data) > len(BODY) // 2 and data.endswith(b"\n\n"):
                    t1 = time.time_ns()
                    break
            else:
                time.sleep(0.0002)
        if t1 is None:
            sys.exit(f"latency {label}: message {i} never reached the sink")
        if i >= 0:
            result.append((t1 - t0) / 1e6)
        time.sleep(pause)
    result.sort()
    return statistics.median(result), result[max(0, math.ceil(0.99 * len(result)) - 1)]


def count_rcpts(dump_dir, done):
    """Recipients in the complete dump files of @dump_dir (X-Rcpt-Args lines);
    @done caches the files already counted (name -> count)."""
    total = 0
    for name in os.listdir(dump_dir):
        if name in done:
            total += done[name]
            continue
        try:
            with open(os.path.join(dump_dir, name), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        if not data.endswith(b"\n\n"):
            continue
        head = data.split(b"\nReceived:", 1)[0]
        done[name] = head.count(b"X-Rcpt-Args:")
        total += done[name]
    return total
