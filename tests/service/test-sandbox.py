#!/usr/bin/env python3
"""test-sandbox.py — the daemon needs nothing stagecoach.service forbids.

Runs a GTest that drives the real daemon (tests/service/test-systemd: start,
READY, the watchdog, two reloads, SIGTERM) under strace -f, then checks
every system call the stagecoach-main processes and their threads made
against the unit's filter (systemd-analyze syscall-filter: @system-service
without @privileged), and that none asked for memory both writable and
executable or made memory executable (MemoryDenyWriteExecute=).  As root
the run drops to nobody first, as the unit runs as its own user (SQLite
fchown()s new files when it runs as root).  TAP; a skip plan without strace or
systemd-analyze.
  test-sandbox.py TEST-PROGRAM
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def expand(group):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group],
                         capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        names |= expand(word) if word.startswith("@") else {word}
    return names


def main():
    program = sys.argv[1]
    for tool in ("strace", "systemd-analyze"):
        if shutil.which(tool) is None:
            print(f"1..0 # SKIP {tool} is not installed")
            return 0  # TAP: the plan says skip
    allowed = expand("@system-service") - expand("@privileged")

    with tempfile.TemporaryDirectory(prefix="sc-sandbox-") as tmp:
        os.chmod(tmp, 0o777)
        trace = os.path.join(tmp, "trace")
        command = ["strace", "-f", "-qq", "-e", "signal=none", "-o", trace, program, "--tap"]
        if os.geteuid() == 0:
            command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + command
        env = dict(os.environ, TMPDIR=tmp, HOME=tmp)
        # LeakSanitizer cannot run under ptrace; the `systemd` test checks
        # the same run for leaks without strace
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"]))
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
        skipped = re.search(r"^ok \d+ /systemd/notify/lifecycle # SKIP (.*)$", run.stdout, re.M)
        if skipped:
            print(f"1..0 # SKIP the daemon's lifecycle test skipped: {skipped.group(1)}")
            return 0  # TAP: the plan says skip
        n = 0
        failed = 0

        def check(ok, what, *details):
            nonlocal n, failed
            n += 1
            print(f"{'ok' if ok else 'not ok'} {n} - {what}")
            if not ok:
                failed += 1
                for detail in details:
                    print("# " + str(detail).replace("\n", "\n# "))

        check(run.returncode == 0, "the daemon's lifecycle test passes under strace",
              run.stdout[-3000:], run.stderr[-3000:])

        line_re = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z0-9_]+)[( ](.*)$")
        ours = set()
        used = {}
        exec_gain = []
        with open(trace, errors="replace") as f:
            for line in f:
                m = line_re.match(line)
                if not m:
                    continue
                pid, name, rest = int(m.group(1)), m.group(2), m.group(3)
                if name == "execve":
                    # the front execs stagecoach-main with the same pid
                    if rest.rstrip().endswith("= 0") or "resumed>" in line:
                        if "stagecoach-main" in rest.split(",")[0]:
                            ours.add(pid)
                        elif not rest.startswith('"') or "stagecoach" not in rest.split(",")[0]:
                            ours.discard(pid)
                    continue
                if pid not in ours:
                    continue
                if name in ("clone", "clone3", "fork", "vfork"):
                    child = re.search(r"= (\d+)\s*$", rest)
                    if child:
                        ours.add(int(child.group(1)))
                used[name] = used.get(name, 0) + 1
                if name in ("mprotect", "pkey_mprotect") and "PROT_EXEC" in rest:
                    exec_gain.append(line.strip())
                if name == "mmap" and "PROT_EXEC" in rest and "PROT_WRITE" in rest:
                    exec_gain.append(line.strip())

        check(len(ours) >= 2, f"stagecoach-main traced ({len(ours)} processes and threads)")
        print(f"# {len(used)} system calls: {' '.join(sorted(used))}")
        outside = sorted(set(used) - allowed)
        check(not outside, "every system call is in @system-service without @privileged",
              f"outside the filter: {outside}")
        check(not exec_gain, "no writable+executable memory, nothing made executable",
              *exec_gain[:5])
        print(f"1..{n}")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
