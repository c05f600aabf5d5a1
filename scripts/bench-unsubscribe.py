#!/usr/bin/env python3
"""What a per-recipient List-Unsubscribe costs (issue 11, RFC 8058).

One 4 KiB post to N recipients over D domains, drained by `stagecoach run
--once` into a local smtp-sink, in four list setups measured side by side
in one run:

  shared    unsubscribe-url without $recipient: decorate adds it once,
            deliver sends up to max-recipients per transaction
  personal  unsubscribe-url with $recipient: one transaction per recipient,
            the fields added per recipient at delivery
  signed    shared, with the sign stage (DKIM, RSA-2048): one signature
  personal+signed  personal with sign: one signature per recipient

Prints the wall time, transactions (stagecoach's own count), recipients per
second, and each setup's time as a ratio to `shared`.

    scripts/bench-unsubscribe.py [--recipients N] [--domains D] [--build DIR]
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--recipients", type=int, default=1000)
parser.add_argument("--domains", type=int, default=10)
parser.add_argument("--rounds", type=int, default=3, help="best of this many runs per setup")
parser.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
args = parser.parse_args()

binary = os.path.abspath(os.path.join(args.build, "stagecoach"))
BODY = ("From: a@example.org\r\nTo: bench@example.org\r\nSubject: unsubscribe cost\r\n"
        "Message-ID: <bench-%d@example.org>\r\n\r\n"
        + "line of text, about four kilobytes in all\r\n" * 95)
SETUPS = [
    ("shared", "https://lists.example.org/leave?list=$list_id", False),
    ("personal", "https://lists.example.org/leave?who=$recipient", False),
    ("signed", "https://lists.example.org/leave?list=$list_id", True),
    ("personal+signed", "https://lists.example.org/leave?who=$recipient", True),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_setup(work, port, key, name, url, sign, round_no):
    folder = os.path.join(work, f"{name}-{round_no}")
    os.makedirs(folder)
    config = os.path.join(folder, "stagecoach.conf")
    pipeline = "decorate;sign;deliver" if sign else "decorate;deliver"
    with open(config, "w") as f:
        f.write(f"[stagecoach]\nspool={folder}/spool\nworkers=4\n[admin]\nlisten=\n"
                f"[mailer:sink]\nurl=smtp://127.0.0.1:{port}\nstarttls=off\nmax-recipients=100\n"
                f"[list:bench.example.org]\npipeline={pipeline}\nsubject-prefix=[bench]\n"
                "address=bench@lists.example.org\nfrom-rewrite=never\n"
                f"unsubscribe-url={url}\nunsubscribe=mailto:leave@lists.example.org\n"
                + (f"dkim-selector=bench\ndkim-key-file={key}\n" if sign else ""))
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    recipients = [f"user{i}@domain{i % args.domains}.example" for i in range(args.recipients)]
    subprocess.run([binary, "inject", "--list", "bench.example.org"] + recipients,
                   input=(BODY % round_no).encode(), env=env, check=True, capture_output=True)
    started = time.monotonic()
    done = subprocess.run([binary, "run", "--once"], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{name}: run --once failed: {done.stderr[-500:]}")
    match = re.search(r"mailer \S+: transactions=(\d+)", done.stderr)
    return elapsed, int(match.group(1)) if match else -1


def main():
    if not shutil.which("smtp-sink") or not os.path.exists(binary):
        raise SystemExit("needs smtp-sink (postfix) and a build: meson setup build && ninja -C build")
    work = tempfile.mkdtemp(prefix="sc-bench-unsubscribe-")
    sink = None
    try:
        key = os.path.join(work, "dkim.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", key], check=True, capture_output=True)
        port = free_port()
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{port}", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        results = {}
        for round_no in range(args.rounds):
            for name, url, sign in SETUPS:
                elapsed, transactions = run_setup(work, port, key, name, url, sign, round_no)
                best = results.get(name)
                if best is None or elapsed < best[0]:
                    results[name] = (elapsed, transactions)
        base = results["shared"][0]
        print(f"{args.recipients} recipients over {args.domains} domains, one 4 KiB post, "
              f"best of {args.rounds} (run --once, smtp-sink on 127.0.0.1)")
        print(f"{'setup':18} {'seconds':>8} {'transactions':>13} {'rcpt/s':>8} {'x shared':>9}")
        for name, _, _ in SETUPS:
            elapsed, transactions = results[name]
            print(f"{name:18} {elapsed:8.2f} {transactions:13d} {args.recipients / elapsed:8.0f} "
                  f"{elapsed / base:9.2f}")
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait()
        shutil.rmtree(work, ignore_errors=True)


main()
