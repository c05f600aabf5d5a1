#!/usr/bin/env python3
"""Sends one message to stagecoach's SMTP listener with Python's smtplib,
as Mailman 3 does, asserting the EHLO keywords and every reply on the way.
Usage: smtplib-client.py HOST PORT.  Prints the queue id; exit 1 on a
failed check."""
import smtplib
import sys


def check(condition, what):
    if not condition:
        print("FAILED:", what)
        sys.exit(1)


host, port = sys.argv[1], int(sys.argv[2])
with smtplib.SMTP(host, port, timeout=60) as client:
    code, _ = client.ehlo("client.example.org")
    check(code == 250, "EHLO 250")
    for keyword in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes"):
        check(client.has_extn(keyword), "EHLO advertises " + keyword)
    check(not client.has_extn("starttls"), "no STARTTLS without certificate")
    check(not client.has_extn("auth"), "no AUTH before STARTTLS")
    check(client.noop()[0] == 250, "NOOP 250")
    check(client.verify("someone@example.org")[0] == 252, "VRFY 252")
    check(client.docmd("HELP")[0] == 214, "HELP 214")
    check(client.rset()[0] == 250, "RSET 250")
    message = ("From: sender@example.org\r\nTo: list@test.example.org\r\n"
               "Subject: smtplib test\r\nMessage-ID: <smtplib-1@example.org>\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\n"
               "caf\u00e9\r\n.leading dot\r\nlast line\r\n").encode("utf-8")
    check(client.mail("sender@example.org", ["SIZE=%d" % len(message), "BODY=8BITMIME"])[0] == 250,
          "MAIL 250")
    for rcpt in ("one@example.org", "two@example.net"):
        check(client.rcpt(rcpt)[0] == 250, "RCPT 250")
    code, reply = client.data(message)
    check(code == 250, "DATA 250, got %d %r" % (code, reply))
    text = reply.decode()
    check("queued as " in text, "a queue id in %r" % text)
    print(text.split("queued as ")[1])
