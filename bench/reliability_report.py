"""Print the fault and bad-input suites' figures (artifacts/reliability.jsonl) as Markdown.

    .venv/bin/python bench/reliability_report.py [--file artifacts/reliability.jsonl]

Every run of a test under tests/faults appends one JSON line; the newest line per name is
shown. Faults: one row each with the messages expected, delivered, duplicated and lost.
Bad input: one row per family with what was sent and what came back (error frames, pongs,
close codes, HTTP statuses), the count of 1011 closes, and what the watched generation got.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "artifacts" / "reliability.jsonl"

FAULT_COLUMNS = ["expected", "delivered", "duplicated", "lost", "outOfOrder"]
FAULT_SKIP = {"name", "at", "kind", *FAULT_COLUMNS}


def newest(path: Path) -> dict[str, dict[str, Any]]:
    """The last entry of each name, in the order names first appeared."""
    found: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            print(f"{path}:{number}: not JSON, skipped", file=sys.stderr)
            continue
        if isinstance(entry, dict) and "name" in entry:
            found[entry["name"]] = entry
    return found


def compact(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(compact(v) for v in value) + "]"
    if value is None:
        return "-"
    return str(value)


def cell(value: Any) -> str:
    return compact(value).replace("|", "\\|").replace("\n", " ")


def watched(entry: dict[str, Any]) -> str:
    """What the client watching a live generation meanwhile got: lost/duplicated of expected."""
    got = entry.get("watched")
    if not isinstance(got, dict) or "expected" not in got:
        return ""
    return (
        f"{got['delivered']}/{got['expected']} delivered, {got['duplicated']} dup, "
        f"{got['lost']} lost, {str(got.get('terminal') or '-').removeprefix('generation.')}"
    )


def fault_table(entries: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| fault | expected | delivered | duplicated | lost | out of order | details | run at |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        details = "; ".join(f"{k}: {cell(v)}" for k, v in e.items() if k not in FAULT_SKIP)
        numbers = " | ".join(cell(e.get(k)) for k in FAULT_COLUMNS)
        lines.append(f"| {cell(e['name'])} | {numbers} | {details} | {e.get('at', '')} |")
    return lines


BAD_INPUT_SKIP = {
    "name",
    "at",
    "kind",
    "sent",
    "errorFrames",
    "pongs",
    "closeCodes",
    "count1011",
    "watched",
    "statuses",
    "http500",
    "handshakesRefused",
    "worked",
}


def bad_input_table(entries: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| family | sent | error frames | pongs | close codes / HTTP statuses | 1011 | 500 "
        "| watched generation | details |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        answers = e.get("statuses") or e.get("closeCodes") or {}
        refused = e.get("handshakesRefused")
        answer_text = cell(answers) if answers else "none"
        if refused:
            answer_text += f"; handshake refused {cell(refused)}"
        if e.get("worked"):
            answer_text += f"; opened normally {e['worked']}"
        details = "; ".join(f"{k}: {cell(v)}" for k, v in e.items() if k not in BAD_INPUT_SKIP)
        lines.append(
            f"| {cell(e['name'].removeprefix('bad input: '))} | {cell(e.get('sent'))} "
            f"| {cell(e.get('errorFrames', ''))} | {cell(e.get('pongs', ''))} | {answer_text} "
            f"| {cell(e.get('count1011', 0))} | {cell(e.get('http500', ''))} | {watched(e)} "
            f"| {details} |"
        )
    return lines


def report(path: Path) -> str:
    entries = list(newest(path).values())
    faults = [e for e in entries if e.get("kind") != "bad-input"]
    bad = [e for e in entries if e.get("kind") == "bad-input"]
    out = [f"# Reliability figures ({path.name}, newest run of each)", ""]
    if faults:
        out += ["## Faults", "", *fault_table(faults), ""]
    if bad:
        out += ["## Bad input", "", *bad_input_table(bad), ""]
    if not faults and not bad:
        out.append("No figures yet: run `.venv/bin/python -m pytest tests/faults`.")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=DEFAULT, help="default: %(default)s")
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"{args.file} does not exist: run .venv/bin/python -m pytest tests/faults first")
        return 1
    print(report(args.file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
