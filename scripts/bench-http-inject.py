#!/usr/bin/env python3
"""HTTP inject rate: POST /api/v1/messages with N parallel clients.

Starts `stagecoach run` on a fresh spool (admin server on a free loopback
port, an inject-only token), then CLIENTS threads post MESSAGES messages
between them (4 KiB each, a fresh Message-ID each, one recipient), each
answered 201 only after the daemon's durable commit.  Prints msgs/s over
the whole run (first request sent to last answer), latency median/p99 and
the command line.  The server answers each request with Connection:
close, so every request is a new TCP connection (http.client reconnects).

    scripts/bench-http-inject.py [--messages N] [--clients C] [--size BYTES] [--build DIR]

scripts/bench-ingress.py can reuse the measurement on a daemon of its own:

    spec = importlib.util.spec_from_file_location("bench_http_inject", PATH)
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    result = module.http_inject_rate(port, token, list_id, messages=5000, clients=8)
    # {"messages", "seconds", "rate", "median_ms", "p99_ms", "errors"}
"""
import argparse
import http.client
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

TOKEN = "bench-inject-token-0123456789abcdef"
LIST = "bench.example.org"


def make_message(index, size):
    head = (f"From: Poster <poster@example.org>\r\nTo: {LIST}\r\n"
            f"Subject: http bench {index}\r\n"
            f"Message-ID: <http-bench-{index}-{os.getpid()}@example.org>\r\n\r\n")
    line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return (head + body).encode()


def http_inject_rate(port, token, list_id, messages=5000, clients=8, size=4096,
                     host="127.0.0.1", sender="bounces@example.org"):
    """Posts @messages over @clients threads to a running daemon; returns figures."""
    query = urllib.parse.urlencode({"list": list_id, "from": sender, "to": "member@example.net"})
    path = "/api/v1/messages?" + query
    headers = {"Content-Type": "message/rfc822", "Authorization": "Bearer " + token}
    bodies = [make_message(i, size) for i in range(messages)]
    next_index = [0]
    lock = threading.Lock()
    latencies = []
    errors = []

    def client():
        connection = http.client.HTTPConnection(host, port, timeout=60)
        mine = []
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= messages:
                break
            started = time.perf_counter()
            try:
                connection.request("POST", path, body=bodies[index], headers=headers)
                response = connection.getresponse()
                reply = response.read()
                if response.status != 201:
                    errors.append(f"{response.status} {reply[:200]!r}")
            except (OSError, http.client.HTTPException) as error:
                errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=60)
                continue
            mine.append(time.perf_counter() - started)
        connection.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "messages": len(latencies),
        "seconds": seconds,
        "rate": len(latencies) / seconds if seconds > 0 else 0.0,
        "median_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000 if latencies else 0.0,
        "errors": errors,
    }


def start_daemon(binary, work, pipeline):
    """A daemon on a fresh spool in @work; returns (process, port, env)."""
    tokens = os.path.join(work, "tokens")
    with open(tokens, "w") as f:
        f.write(f"bench {TOKEN} inject\n")
    os.chmod(tokens, 0o600)
    config = os.path.join(work, "stagecoach.conf")
    with open(config, "w") as f:
        f.write("[stagecoach]\nspool=spool\nworkers=2\n"
                "[admin]\nlisten=127.0.0.1:0\ntoken-file=tokens\n"
                f"[list:{LIST}]\npipeline={pipeline}\n")
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    log_path = os.path.join(work, "daemon.log")
    log = open(log_path, "w")
    daemon = subprocess.Popen([binary, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(log_path) as f:
            found = re.search(r"admin dashboard listening on http://\S+:(\d+)/", f.read())
        if found:
            return daemon, int(found.group(1)), env
        if daemon.poll() is not None:
            break
        time.sleep(0.05)
    daemon.kill()
    with open(log_path) as f:
        sys.exit("the daemon did not start:\n" + f.read())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", type=int, default=4096, help="bytes per message")
    parser.add_argument("--pipeline", default="decorate",
                        help="the list's pipeline (the runner works while mail comes in)")
    parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    args = parser.parse_args()

    binary = os.path.abspath(os.path.join(args.build, "stagecoach"))
    work = tempfile.mkdtemp(prefix="sc-bench-http-inject-")
    daemon = None
    try:
        daemon, port, env = start_daemon(binary, work, args.pipeline)
        result = http_inject_rate(port, TOKEN, LIST, args.messages, args.clients, args.size)
        status = subprocess.run([binary, "status", "--json"], env=env, capture_output=True,
                                text=True, check=True).stdout
        total = re.search(r'"total"\s*:\s*(\d+)', status)
        print("command: " + " ".join(shlex.quote(a) for a in sys.argv))
        print(f"HTTP inject, {args.clients} parallel clients, {args.size}-byte messages, "
              f"201 after the durable commit:")
        print(f"  {result['messages']} messages in {result['seconds']:.2f} s: "
              f"{result['rate']:.0f} msgs/s")
        print(f"  per request: median {result['median_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
        print(f"  in the spool afterwards: {total.group(1) if total else '?'}")
        if result["errors"]:
            print(f"  errors: {len(result['errors'])}, first: {result['errors'][0]}")
            sys.exit(1)
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
