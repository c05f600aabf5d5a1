#!/usr/bin/env python3
"""bench-refuser (figure 5's relay) over real SMTP on loopback, through benchlib.CRefuser:
the first two deliveries of a message are answered 450 after the data, the third 250;
a message is its Message-ID with its recipients; pipelined commands are answered in
order.  TAP output for meson.  argv[1]: the built bench-refuser."""
import os
import smtplib
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

checks = []


def check(name, got, want):
    checks.append((got == want, f"{name}: got {got!r}, want {want!r}"))


def message(message_id):
    return (f"From: a@bench.example\r\nMessage-ID: {message_id}\r\nSubject: t\r\n\r\n"
            "body\r\n.starts with a dot\r\n").encode()


def send(port, message_id, rcpts):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        smtp.mail("a@bench.example")
        for rcpt in rcpts:
            smtp.rcpt(rcpt)
        code, _ = smtp.data(message(message_id))
        return code


refuser = bl.CRefuser(sys.argv[1], 2)
try:
    refuser.expect(2)
    t0 = time.monotonic()
    codes = [send(refuser.port, "<one@bench.example>", ["r1@list.example"]) for _ in range(3)]
    check("one message: 450, 450, then 250", codes, [450, 450, 250])
    # other recipients (case does not matter) make another message; so does another id
    check("same id, other recipients: refused",
          send(refuser.port, "<one@bench.example>", ["r2@list.example"]), 450)
    check("same id and recipients in other case: third delivery",
          send(refuser.port, "<one@bench.example>", ["R1@List.Example"]), 250)
    # pipelined: MAIL, RCPT and DATA in one write, answered in order
    with socket.create_connection(("127.0.0.1", refuser.port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO c\r\n")
        ehlo = [f.readline() for _ in range(4)]
        check("PIPELINING offered", b"250-PIPELINING\r\n" in ehlo, True)
        s.sendall(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
        check("pipelined replies in order", [f.readline()[:3] for _ in range(3)],
              [b"250", b"250", b"354"])
        s.sendall(b"Message-ID: <two@x>\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        check("end of data, then QUIT", [f.readline()[:3] for _ in range(2)], [b"450", b"221"])
    check("all_accepted after the second 250", refuser.all_accepted.wait(5), True)
    time.sleep(0.2)  # the reader thread takes the last lines
    check("counts", (refuser.accepted, refuser.refused), (2, 4))
    check("250 times on time.monotonic()'s clock",
          all(t0 <= t <= time.monotonic() for t in refuser.accept_times), True)
finally:
    refuser.stop()
check("ends at SIGTERM", refuser.process.returncode, 0)

print(f"1..{len(checks)}")
for i, (ok, text) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {i} - {text}")
sys.exit(0 if all(ok for ok, _ in checks) else 1)
