#!/usr/bin/env python3
"""tests/docs/test-alert-rules.py RULES — the Prometheus alert rules in RULES
(data/prometheus/stagecoach-alerts.yml) against a real daemon.  TAP output.

1. A YAML parse, and every rule has alert, expr, labels.severity and
   annotations.summary.
2. Rule by rule: every metric name in its expr is one that a running
   `stagecoach run` ($STAGECOACH_BIN) exports on /metrics — read from the
   daemon, after it has run a message through decorate, archive and a
   failing deliver, not from a list written here — or `up`, which
   Prometheus records itself.  The name extractor is checked on expressions
   with known answers first, so that it cannot pass by finding nothing.
3. `promtool check rules RULES` and, with --unit FILE, `promtool test rules
   FILE` (alerts that must fire, and stay quiet, on given series).  promtool is looked up in PATH, then $PROMTOOL, then
   build-cache/prometheus/usr/bin/promtool in the source tree (scripts/deps.sh
   unpacks it there without installing Prometheus).  Without it these are
   reported as TAP skips and the checks above stand alone.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import yaml
except ImportError:
    # the rules are always parsed: no YAML module is a failure, not a skip
    print("Bail out! no yaml module for %s (Debian: python3-yaml, scripts/deps.sh test)" % sys.executable)
    sys.exit(1)

# Prometheus records these per target; stagecoach cannot export them.
PROMETHEUS_SERIES = {"up"}
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "bool", "inf", "nan", "start", "end",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group",
}

tap_count = 0
failures = 0


def ok(passed, description, diagnostics=None):
    global tap_count, failures
    tap_count += 1
    print(("ok" if passed else "not ok") + " %d - %s" % (tap_count, description))
    if not passed:
        failures += 1
        for line in (diagnostics or "").splitlines():
            print("# " + line)
    sys.stdout.flush()


def skip(description, reason):
    global tap_count
    tap_count += 1
    print("ok %d - %s # SKIP %s" % (tap_count, description, reason))
    sys.stdout.flush()


def metric_names(expr):
    """The metric names a PromQL expression reads (not functions, keywords,
    label names, label values or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)
    text = re.sub(r"`[^`]*`", "``", text)
    text = re.sub(r"\{[^}]*\}", " ", text)        # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)       # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", text)
    names = set()
    for match in re.finditer(r"(?<![0-9A-Za-z_:.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if text[match.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port, token):
    request = urllib.request.Request("http://127.0.0.1:%d/metrics" % port,
                                     headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.read().decode()


def exported_names(text):
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
            elif kind == "summary":
                names.update({name + "_sum", name + "_count"})
        elif line and not line.startswith("#"):
            names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def find_promtool(source_root):
    found = shutil.which("promtool")
    if found:
        return found
    for candidate in (os.environ.get("PROMTOOL"),
                      os.path.join(source_root, "build-cache", "prometheus", "usr", "bin", "promtool")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_daemon(work, binary):
    """Start `stagecoach run` on a SQLite spool; return (process, port, token)."""
    port = free_port()
    dead_port = free_port()  # nothing listens: deliver fails, deliveries_total appears
    token = "alert-rules-test-" + os.urandom(16).hex()
    with open(os.path.join(work, "tokens"), "w") as f:
        f.write("prometheus %s\n" % token)
    os.chmod(os.path.join(work, "tokens"), 0o600)
    config = os.path.join(work, "stagecoach.conf")
    with open(config, "w") as f:
        f.write("[stagecoach]\nspool=%s/spool\n"
                "[admin]\nlisten=127.0.0.1:%d\ntoken-file=%s/tokens\n"
                "[retry]\ninitial=1h\n"
                "[mailer:relay]\nurl=smtp://127.0.0.1:%d\nstarttls=off\ntimeout=5s\n"
                "[list:alerts.example.org]\npipeline=decorate;archive;deliver\n"
                "archive=maildir:%s/archive\nfrom-rewrite=never\n"
                % (work, port, work, dead_port, work))
    env = dict(os.environ, STAGECOACH_CONFIG=config)
    log = open(os.path.join(work, "daemon.log"), "w")
    daemon = subprocess.Popen([binary, "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    message = b"From: a@example.org\nSubject: alert rules test\n\nhello\n"
    deadline = time.monotonic() + 30
    while True:
        try:
            scrape(port, token)
            break
        except (urllib.error.URLError, ConnectionError):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not serve /metrics; log:\n" +
                                   open(os.path.join(work, "daemon.log")).read())
            time.sleep(0.1)
    subprocess.run([binary, "inject", "--list", "alerts.example.org", "--from", "a@example.org",
                    "b@example.net"], input=message, env=env, check=True, stdout=subprocess.DEVNULL)
    return daemon, port, token, env


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rules")
    parser.add_argument("--unit", help="a promtool rule unit test file")
    args = parser.parse_args()
    binary = os.environ["STAGECOACH_BIN"]
    source_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    # 1. parse
    try:
        with open(args.rules) as f:
            document = yaml.safe_load(f)
        groups = document["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        ok(len(rules) > 0, "%s parses as YAML: %d group(s), %d rule(s)" % (args.rules, len(groups), len(rules)))
    except Exception as e:  # noqa: BLE001 - any parse error is the failure
        ok(False, "%s parses as YAML" % args.rules, repr(e))
        print("1..%d" % tap_count)
        return 1

    for rule in rules:
        name = rule.get("alert", rule.get("record", "?"))
        missing = [key for key in ("alert", "expr") if not rule.get(key)]
        if not rule.get("labels", {}).get("severity"):
            missing.append("labels.severity")
        if not rule.get("annotations", {}).get("summary"):
            missing.append("annotations.summary")
        ok(not missing, "rule %s has alert, expr, labels.severity, annotations.summary" % name,
           "missing: " + ", ".join(missing))

    # 2a. the extractor on known answers
    cases = {
        'sum by (instance, mailer) (rate(stagecoach_deliveries_total{result!="ok"}[15m])) > 0 '
        'unless sum by (instance, mailer) (rate(stagecoach_deliveries_total{result="ok"}[15m])) > 0':
            {"stagecoach_deliveries_total"},
        'min_over_time(sum by (instance) (foo{state="deferred"})[6h:5m]) > 0 and bar offset 5m':
            {"foo", "bar"},
        'up{job="stagecoach"} == 0 or absent(stagecoach_nonexistent_total)':
            {"up", "stagecoach_nonexistent_total"},
        'histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m]))) > 1e3': {"x_bucket"},
    }
    for expr, expected in cases.items():
        got = metric_names(expr)
        ok(got == expected, "the name extractor finds %s" % sorted(expected), "got %s in: %s" % (sorted(got), expr))

    # 2b. the names a real daemon exports
    work = tempfile.mkdtemp(prefix="sc-alert-rules.")
    daemon = None
    try:
        daemon, port, token, env = run_daemon(work, binary)
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            text = scrape(port, token)
            if "stagecoach_deliveries_total{" in text and "stagecoach_stage_duration_seconds_bucket{" in text:
                break
            time.sleep(0.2)
        exported = exported_names(text)
        ok("stagecoach_deliveries_total" in exported and "stagecoach_messages" in exported,
           "the daemon's /metrics lists %d metric names after a message ran" % len(exported), text)
        print("# exported: " + " ".join(sorted(exported)))
        for rule in rules:
            names = metric_names(str(rule.get("expr", "")))
            unknown = sorted(names - exported - PROMETHEUS_SERIES)
            ok(names and not unknown,
               "rule %s reads only exported metrics: %s" % (rule.get("alert"), ", ".join(sorted(names))),
               "not exported by stagecoach: %s" % ", ".join(unknown) if unknown else "no metric name found")
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        shutil.rmtree(work, ignore_errors=True)

    # 3. promtool
    promtool = find_promtool(source_root)
    if promtool is None:
        skip("promtool check rules", "no promtool (scripts/deps.sh test unpacks it into build-cache/)")
        if args.unit:
            skip("promtool test rules", "no promtool")
    else:
        result = subprocess.run([promtool, "check", "rules", args.rules], capture_output=True, text=True)
        ok(result.returncode == 0, "%s check rules: %s" % (promtool, result.stdout.strip().replace("\n", " ")),
           result.stdout + result.stderr)
        if args.unit:
            result = subprocess.run([promtool, "test", "rules", args.unit], capture_output=True, text=True,
                                    cwd=os.path.dirname(os.path.abspath(args.unit)))
            ok(result.returncode == 0, "promtool test rules %s: %s" %
               (os.path.basename(args.unit), result.stdout.strip().replace("\n", " ")), result.stdout + result.stderr)

    print("1..%d" % tap_count)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
