"""The repository itself: no file keeps the markers of an unresolved merge."""

from __future__ import annotations

import re
import subprocess

from tests.support.procs import ROOT

MARKER = re.compile(r"^(<{7} |={7}$|>{7} )", re.MULTILINE)


def test_no_file_holds_merge_conflict_markers() -> None:
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in names:
        path = ROOT / name
        if path.suffix in {".png", ".jpg", ".ico"} or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        found += [f"{name}:{text[: m.start()].count(chr(10)) + 1}" for m in MARKER.finditer(text)]
    assert found == []
