"""Side by side: the points and transitions of two `reproduce all` result directories.

    python compare.py results/cpu results/cpu-xeon > COMPARISON.md

For every experiment report present in both (each `<name>/summary.json`): per grid point the
seed-mean unseen and seen accuracy of each; per line the I50 (final evaluation) with its
95% CI; each run's wall time. Only summary.json files are read.
"""

import json
import sys
from pathlib import Path


def load(directory: Path, name: str) -> dict:
    return json.loads((directory / name / "summary.json").read_text(encoding="utf-8"))


def points(summary: dict) -> dict:
    [key] = [k for k in summary if "/" in k]
    return {json.dumps(p["factors"], sort_keys=True): p for p in summary[key]}, key


def i50s(summary: dict, key: str) -> dict:
    lines = summary["analysis"][key].get("transitions", {})
    out = {}
    for line, t in lines.items():
        final = t["final"]
        if "i50_ci" not in final:  # no fit (e.g. too few grid points)
            out[line] = final["i50_status"]
            continue
        value = final["i50"] if final["i50_status"] == "within" else final["i50_status"]
        ci = [
            f"{c:.0f}" if s == "within" else s
            for c, s in zip(final["i50_ci"], final["i50_ci_status"], strict=True)
        ]
        value = f"{value:.0f}" if isinstance(value, float) else value
        out[line] = f"{value} (95% CI {ci[0]}-{ci[1]})"
    return out


def label(factors: dict) -> str:
    return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in factors.items())


def fmt(p: dict | None) -> str:
    if p is None:
        return "–"
    return f"{p['unseen_accuracy']:.2f} / {p['seen_accuracy']:.2f}"


def main(first: Path, second: Path) -> None:
    names = sorted(p.parent.name for p in first.glob("*/summary.json"))
    print(f"# {first} against {second}\n")
    print("Per grid point: unseen / seen exact match, mean over seeds.\n")
    for name in names:
        if not (second / name / "summary.json").is_file():
            print(f"## {name}\n\nonly in {first}\n")
            continue
        a, b = load(first, name), load(second, name)
        (pa, key_a), (pb, key_b) = points(a), points(b)
        print(f"## {name}\n")
        print(f"wall time: {a['run']['wall_s'] / 60:.1f} min against {b['run']['wall_s'] / 60:.1f} min\n")
        ia, ib = i50s(a, key_a), i50s(b, key_b)
        for line in sorted(set(ia) | set(ib)):
            print(f"- I50 ({line}): {ia.get(line, '–')} against {ib.get(line, '–')}")
        print(f"\n| point | seeds | {first.name} | {second.name} |\n|---|---|---|---|")
        for factors in sorted(set(pa) | set(pb), key=lambda f: [str(v).zfill(8) for v in json.loads(f).values()]):
            p, q = pa.get(factors), pb.get(factors)
            seeds = (p or q)["seeds"]
            print(f"| {label(json.loads(factors))} | {seeds} | {fmt(p)} | {fmt(q)} |")
        print()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
