#!/usr/bin/env python3
"""stagecoach stopped in the middle of a transaction, seen by Python's smtplib
the way GNU Mailman 3 uses it (mailman/mta/base.py): the recipients it counts
as failed are SMTPRecipientsRefused.recipients, or all of them for any other
error; every other recipient counts as delivered and is never sent again.

smtplib answers a 421 to RCPT by raising SMTPRecipientsRefused with only the
recipients refused so far, so a 421 in the middle of the RCPTs makes Mailman
drop the rest of the chunk (seen in test-mailman3.sh: 19 of 300 lost).

The case: MAIL, RCPT of the first recipient, SIGTERM to `stagecoach run`,
wait until its listener is closed, then the other RCPTs, DATA.  Every
recipient Mailman would count as delivered must be in the spool.  TAP.
"""
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

binary = os.environ.get("STAGECOACH_BIN")
if not binary:
    print("Bail out! STAGECOACH_BIN is not set")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


work = tempfile.mkdtemp(prefix="sc-smtplib-stop-")
port = free_port()
config = os.path.join(work, "stagecoach.conf")
with open(config, "w") as f:
    f.write(f"[stagecoach]\nspool={work}/spool\n[admin]\nlisten=\n"
            f"[ingress]\nsmtp=127.0.0.1:{port}\n"
            "[mailer:sink]\nurl=smtp://127.0.0.1:1\nstarttls=off\n"
            "[retry]\ninitial=1h\nmax-delay=1h\n"
            "[list:stop.example.org]\npipeline=deliver\nbounces=stop-bounces@example.org\n")
env = dict(os.environ, STAGECOACH_CONFIG=config)
log = open(os.path.join(work, "daemon.log"), "w")
daemon = subprocess.Popen([binary, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
status = 0
try:
    deadline = time.monotonic() + 20
    while not listening(port):
        if daemon.poll() is not None or time.monotonic() > deadline:
            print(f"Bail out! stagecoach run does not listen on [ingress] smtp=127.0.0.1:{port}")
            sys.exit(1)
        time.sleep(0.02)

    recipients = [f"member{i}@d{i}.example" for i in range(1, 6)]
    message = ("From: poster@example.net\r\nTo: stop@example.org\r\n"
               "List-Id: <stop.example.org>\r\nMessage-ID: <smtplib-stop@example.net>\r\n"
               "Subject: stopped in the middle\r\n\r\nbody\r\n")

    class StoppingSMTP(smtplib.SMTP):
        """Sends SIGTERM to the daemon right after the first RCPT is accepted."""
        rcpts = 0

        def rcpt(self, recip, options=()):
            reply = super().rcpt(recip, options)
            self.rcpts += 1
            if self.rcpts == 1:
                daemon.send_signal(signal.SIGTERM)
                until = time.monotonic() + 20
                while listening(port) and time.monotonic() < until:
                    time.sleep(0.01)
                time.sleep(0.2)  # the listener closes just before sessions are told
            return reply

    failed = set(recipients)
    outcome = ""
    try:
        with StoppingSMTP("127.0.0.1", port, local_hostname="[127.0.0.1]", timeout=30) as smtp:
            refused = smtp.sendmail("stop-bounces@example.org", recipients, message)
            failed = set(refused)
            outcome = f"sendmail returned, refused: {refused}"
    except smtplib.SMTPRecipientsRefused as e:   # what Mailman trusts
        failed = set(e.recipients)
        outcome = f"SMTPRecipientsRefused {e.recipients}"
    except (smtplib.SMTPException, OSError) as e:  # Mailman: all of the chunk failed
        outcome = f"{type(e).__name__} {e}"
    print(f"# smtplib: {outcome}")
    claimed = [r for r in recipients if r not in failed]

    try:
        daemon.wait(60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
    stored = set()
    out = subprocess.run([binary, "list", "--json", "--limit", "0"], env=env, capture_output=True,
                         text=True, check=True).stdout
    for summary in json.loads(out):
        shown = subprocess.run([binary, "show", "--json", summary["id"]], env=env,
                               capture_output=True, text=True, check=True).stdout
        for r in json.loads(shown).get("recipients", []):
            stored.add(r.get("address") or r.get("recipient"))
    lost = [r for r in claimed if r not in stored]
    if lost:
        status = 1
        print(f"not ok 1 - recipients smtplib counts as delivered are in the spool # lost: {lost}")
    else:
        print(f"ok 1 - recipients smtplib counts as delivered are in the spool "
              f"({len(claimed)} claimed, {len(stored)} stored)")
    print("1..1")
finally:
    if daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    log.close()
    subprocess.run(["rm", "-rf", work])
sys.exit(status)
