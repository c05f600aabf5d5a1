#!/usr/bin/python3
"""dkim-verify.py — checks DKIM signatures with an implementation that is not
stagecoach's: dkimpy (Debian python3-dkim), the key looked up over real DNS
(dnspython) at the test's own server.

    /usr/bin/python3 tests/dkim-verify.py --port PORT FILE...

Verifies the topmost DKIM-Signature of each FILE (a message as received) and
prints one line per file, "ok FILE a=… d=… s=…" or "FAIL FILE: reason".
Exit 0 when every file verified, 1 when any did not, 77 when dkimpy or
dnspython is missing (the tests then skip visibly), 2 on bad arguments.

Run it with /usr/bin/python3: another python3 earlier in PATH may lack the
Debian modules.
"""

import argparse
import logging
import sys

try:
    import dkim
    import dns.exception
    import dns.resolver
except ImportError as error:  # pragma: no cover - depends on the machine
    print("SKIP dkimpy or dnspython missing: %s" % error)
    sys.exit(77)


class Collect(logging.Handler):
    """Keeps dkimpy's error lines: they say why a signature failed."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def make_dnsfunc(server, port):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.port = port

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        try:
            answer = resolver.resolve(name, "TXT", lifetime=timeout, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.Timeout as error:
            raise dkim.DnsTimeoutError(str(error))
        for rdata in answer:
            return b"".join(rdata.strings)
        return None

    return dnsfunc


def verify(path, dnsfunc):
    with open(path, "rb") as stream:
        message = stream.read()
    collect = Collect()
    logger = logging.getLogger("dkim-verify")
    logger.handlers = [collect]
    logger.propagate = False
    signer = dkim.DKIM(message, logger=logger, minkey=1024)
    try:
        ok = signer.verify(dnsfunc=dnsfunc)
    except dkim.DKIMException as error:
        return False, str(error)
    except Exception as error:  # dkimpy's parser raises others (MessageFormatError)
        return False, "%s: %s" % (type(error).__name__, error)
    if not ok:
        reason = "; ".join(collect.lines) or "signature does not verify"
        return False, reason
    fields = signer.signature_fields or {}
    detail = " ".join(
        "%s=%s" % (tag, fields.get(tag.encode(), b"?").decode("ascii", "replace"))
        for tag in ("a", "d", "s"))
    return True, detail


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("files", nargs="+")
    arguments = parser.parse_args()
    dnsfunc = make_dnsfunc(arguments.server, arguments.port)
    failed = 0
    for path in arguments.files:
        ok, detail = verify(path, dnsfunc)
        if ok:
            print("ok %s %s" % (path, detail))
        else:
            failed += 1
            print("FAIL %s: %s" % (path, detail))
    sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
