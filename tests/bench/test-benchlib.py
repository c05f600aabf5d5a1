#!/usr/bin/env python3
"""benchlib.median_ratio: the ratio of two figures is taken round by round (scripts/bench.sh).

On this kind of machine the speed drifts within a run: a Postfix anchor measured in one
minute and stagecoach's figure in another compare badly.  Each round measures both, and
the table shows the median of the rounds' own ratios.  TAP output for meson."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

checks = []


def check(name, got, want):
    ok = got == want if want is None or got is None else abs(got - want) < 1e-9
    checks.append((ok, f"{name}: got {got!r}, want {want!r}"))


# the machine slows down 2x from the second round: every round is 10x, while the
# medians of each column (1,600 / 300) would say 5.3x
check("drift", bl.median_ratio([3000, 1500, 1600], [300, 150, 160]), 10.0)
check("median of three", bl.median_ratio([3000, 1500, 1600], [300, 150, 400]), 10.0)
check("even count: mean of the middle two", bl.median_ratio([10, 20, 30, 40], [1, 1, 1, 1]), 25.0)
# a round where either figure failed (None) or read zero is left out, not counted as 0
check("missing rounds", bl.median_ratio([None, 2000, 900], [100, 200, None]), 10.0)
check("zero is missing", bl.median_ratio([0, 500], [50, 50]), 10.0)
check("no round has both", bl.median_ratio([None, 100], [100, None]), None)
check("nothing measured", bl.median_ratio([], []), None)
# lower is better (times): the caller swaps the arguments
check("times", bl.median_ratio([4.0, 5.0], [2.0, 2.5]), 2.0)

# the columns those ratios are taken from: a failed round ({}) keeps its place
rounds = [{"sc": 3000, "lat": (2.0, 4.0)}, {}, {"sc": 1000, "lat": (1.0, 3.0)}]
checks.append((bl.column(rounds, "sc") == [3000, None, 1000], "column keeps a failed round's place"))
checks.append((bl.column(rounds, "lat", 1) == [4.0, None, 3.0], "column picks an item"))
check("median of the rounds measured", bl.median_of(bl.column(rounds, "sc")), 2000.0)
check("median of nothing measured", bl.median_of([None, None]), None)

print(f"1..{len(checks)}")
for i, (ok, text) in enumerate(checks, 1):
    print(f"{'ok' if ok else 'not ok'} {i} {text}")
sys.exit(0 if all(ok for ok, _ in checks) else 1)
