"""Where the test suite's time goes, from a pytest JUnit file (setup, call and teardown).

    make pytest-parallel PYTEST_ARGS=--junitxml=/tmp/parallel.xml
    python bench/test_times.py /tmp/parallel.xml

Prints the sum of test durations (a figure that depends less on what else the machine runs
than the wall time does), the tests by duration band, and the slowest classes per backend:
those are the candidates for tests/scheduling.py's SECONDS, which starts them first.
"""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from collections import defaultdict

BANDS = [(3.0, float("inf")), (1.0, 3.0), (0.5, 1.0), (0.2, 0.5), (0.1, 0.2), (0.0, 0.1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit", help="a file written by pytest --junitxml")
    parser.add_argument("--top", type=int, default=25, help="how many classes to list")
    args = parser.parse_args()
    cases = [
        (float(case.get("time") or 0), case.get("classname") or "", case.get("name") or "")
        for case in ET.parse(args.junit).iter("testcase")  # noqa: S314 (our own pytest's file)
    ]
    total = sum(seconds for seconds, _, _ in cases)
    print(f"{len(cases)} tests, sum of durations {total:.1f} s")
    for low, high in BANDS:
        band = [seconds for seconds, _, _ in cases if low <= seconds < high]
        print(f"  {low:>4}-{high:<4} s: {len(band):5d} tests, {sum(band):7.1f} s")
    classes: dict[str, list[float]] = defaultdict(list)
    for seconds, classname, name in cases:
        backend = re.search(r"\[(sqlite|postgresql)\b", name)
        key = classname + (f" [{backend.group(1)}]" if backend else "")
        classes[key].append(seconds)
    print(f"slowest {args.top} classes (tests, seconds):")
    for key, times in sorted(classes.items(), key=lambda item: -sum(item[1]))[: args.top]:
        print(f"  {sum(times):7.1f} {len(times):4d}  {key}")


if __name__ == "__main__":
    main()
