#!/usr/bin/env python3
"""Writes the built-in accuracy probe's questions: integer arithmetic, one JSON object per line.

The set is shipped in the repository (crates/sweep-spec/data/arithmetic.jsonl) so that the
probe needs no download; this script is how it was made, and `--check` says whether the shipped
file is still what it makes (a test runs it). Python's `random.Random(seed)` draws the same
integers on every version since 3.2, so the output depends only on the arguments.

    python3 scripts/accuracy/make-arithmetic.py > crates/sweep-spec/data/arithmetic.jsonl
    python3 scripts/accuracy/make-arithmetic.py --check crates/sweep-spec/data/arithmetic.jsonl
"""

import argparse
import json
import random
import sys


def questions(count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        op = rng.choice("+-*")
        if op == "*":
            a, b = rng.randint(2, 99), rng.randint(2, 19)
        else:
            a, b = rng.randint(10, 999), rng.randint(10, 999)
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        yield {"question": f"What is {a} {op} {b}? Answer with the number only.", "answer": str(value)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", metavar="FILE", help="exit 1 unless FILE holds exactly this output")
    args = parser.parse_args()
    text = "".join(json.dumps(q) + "\n" for q in questions(args.count, args.seed))
    if args.check:
        with open(args.check, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{args.check} differs from what this script makes; regenerate it", file=sys.stderr)
                sys.exit(1)
        return
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
