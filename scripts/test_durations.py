"""Write tests/durations.json, each test file's summed seconds, from a JUnit XML report of a whole run:

    .venv/bin/python -m pytest -q -n 2 --dist loadfile --junitxml=/tmp/junit.xml
    .venv/bin/python scripts/test_durations.py /tmp/junit.xml

tests/conftest.py hands the files to pytest-xdist's workers longest first (--dist loadfile, with pyproject's
--no-loadscope-reorder keeping that order), so the two workers end close together. A file missing from the table
counts as a short one; the table only needs refreshing when files change a lot."""

from __future__ import annotations

import collections
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "durations.json"


def file_of(classname: str) -> str:
    """tests.api.test_server(.TestClass) -> tests/api/test_server.py"""
    parts = classname.split(".")
    if parts[-1][:1].isupper():  # a test class
        parts = parts[:-1]
    return "/".join(parts) + ".py"


def main(report: str) -> None:
    seconds: collections.Counter[str] = collections.Counter()
    for case in ET.parse(report).getroot().iter("testcase"):
        seconds[file_of(case.get("classname", ""))] += float(case.get("time", 0))
    table = {name: round(s, 1) for name, s in sorted(seconds.items())}
    OUT.write_text(json.dumps(table, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(table)} files, {sum(table.values()):.0f} s summed")


if __name__ == "__main__":
    main(sys.argv[1])
