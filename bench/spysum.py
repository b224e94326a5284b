"""Summarise a py-spy ``raw`` profile: the share of samples in (inclusive) and at (leaf) each
function, the biggest first.

    .venv/bin/python bench/spysum.py /tmp/prof/profile-daphne.txt [--top 25]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    inclusive, leaf, total = Counter(), Counter(), 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        for name in set(frames):
            inclusive[name] += n
        leaf[frames[-1]] += n
    print(f"{total} samples\n\ninclusive:")
    for name, n in inclusive.most_common(args.top):
        print(f"{100 * n / total:5.1f} %  {name}")
    print("\nleaf:")
    for name, n in leaf.most_common(args.top):
        print(f"{100 * n / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
