#!/usr/bin/env python3
"""Counts GTest cases from meson's testlog.json (TAP output of each binary).

Prints one line: "N passed, N failed[, N skipped]".  A binary that died
without reporting a failing case counts as one failure, so a crash can
never disappear from the count.
"""
import json
import re
import sys

passed = failed = skipped = 0
failures = []
with open(sys.argv[1], encoding="utf-8") as log:
    for line in log:
        test = json.loads(line)
        cases_failed = 0
        for out in (test.get("stdout") or "").splitlines():
            if re.match(r"^ok \d+", out):
                if re.search(r"#\s*SKIP", out, re.I):
                    skipped += 1
                else:
                    passed += 1
            elif re.match(r"^not ok \d+", out):
                if re.search(r"#\s*TODO", out, re.I):
                    skipped += 1
                else:
                    failed += 1
                    cases_failed += 1
                    failures.append(f"{test.get('name')}: {out}")
        cases = sum(1 for out in (test.get("stdout") or "").splitlines()
                    if re.match(r"^(not )?ok \d+", out))
        if test.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and cases_failed == 0:
            failed += 1
            failures.append(f"{test.get('name')}: {test.get('result')} without a failing case")
        elif cases == 0:
            # a test without TAP cases (mandoc lint, the browser scenario) is one case
            if test.get("result") == "SKIP":
                skipped += 1
            else:
                passed += 1
# named just above the count, so a CI log cut to its tail still says which
for failure in failures:
    print(f"FAILED {failure}")
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
