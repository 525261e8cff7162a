"""Benchmark: generating the E1 training set (10^6 examples) plus 10^5 test examples.

Measures wall-clock time, examples/s and peak resident memory of `generate_dataset` for a few
instruction counts of the E1 grid (|z| <= 50, patterns and replacements of 1-20 letters), prints
a table and writes JSON to benchmarks/results/. Each point runs in a fresh process so that the
peak memory of one does not hide another's.

    python benchmarks/bench_generate.py                # full E1 size
    python benchmarks/bench_generate.py --examples 100000 --instructions 100 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def measure_one(instructions: int, examples: int, test_examples: int) -> dict:
    """Generate one dataset in this process; report time and peak memory."""
    from rewritelab.tasks.generate import generate_dataset
    from rewritelab.tasks.spec_files import spec_from_dict

    test_instructions = 1000
    spec = spec_from_dict(
        {
            "seen_test_examples": 10_000,
            "train": {"instructions": instructions, "examples": examples},
            "test": {
                "instructions": test_instructions,
                "examples_per_instruction": test_examples // test_instructions,
            },
        }
    )
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        manifest = generate_dataset(spec, Path(scratch) / "data")
        elapsed_s = time.perf_counter() - start
    total = sum(split["examples"] for split in manifest["counts"].values())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "train_instructions": instructions,
        "examples_written": total,
        "elapsed_s": round(elapsed_s, 3),
        "examples_per_s": round(total / elapsed_s),
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--test-examples", type=int, default=100_000)
    parser.add_argument("--instructions", type=int, nargs="+", default=[10, 1000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child-process mode
    parser.add_argument("--out", default=str(RESULTS / "generate.json"))
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure_one(args.one, args.examples, args.test_examples)))
        return
    rows = []
    for instructions in args.instructions:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(instructions),
                "--examples",
                str(args.examples),
                "--test-examples",
                str(args.test_examples),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(f"{'train I':>10} {'examples':>10} {'seconds':>8} {'examples/s':>11} {'peak MiB':>9}")
    for r in rows:
        print(
            f"{r['train_instructions']:>10} {r['examples_written']:>10} {r['elapsed_s']:>8.2f} "
            f"{r['examples_per_s']:>11} {r['peak_rss_mib']:>9.0f}"
        )
    from rewritelab.core.version import __version__

    result = {
        "benchmark": "generate",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rewritelab": __version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "settings": {
            "examples": args.examples,
            "test_examples": args.test_examples,
            "input_length": [1, 50],
            "pattern_length": [1, 20],
        },
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
