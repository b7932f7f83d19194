"""A JUnit file's counts for .ci/run: "executed skipped failures errors" (0s when the file is
missing or torn), or with --slowest N its N slowest test cases, one per line."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(argv: list[str]) -> int:
    slowest = 0
    if argv[:1] == ["--slowest"]:
        slowest, argv = int(argv[1]), argv[2:]
    try:
        root = ET.parse(argv[0]).getroot()
    except (OSError, ET.ParseError, IndexError):
        if not slowest:
            print("0 0 0 0")
        return 0
    if slowest:
        cases = sorted(((float(c.get("time") or 0), f"{c.get('classname')}::{c.get('name')}")
                        for c in root.iter("testcase")), reverse=True)
        for seconds, name in cases[:slowest]:
            print(f"    {seconds:7.1f} s  {name}")
        return 0
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    failures = sum(int(s.get("failures", 0)) for s in suites)
    errors = sum(int(s.get("errors", 0)) for s in suites)
    print(tests - skipped, skipped, failures, errors)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
