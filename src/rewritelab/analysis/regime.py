"""The regime a result was measured in, set beside the paper's, and its verdict in our words.

A finding can hold on a task far simpler than the paper's: single-letter rules in words of one
length leave 650 possible rules, and training on 512 of them covers most of the space. So every
result carries the table of its regime (pattern, replacement and input lengths, alphabet, the
size of the rule space, the instruction counts and the share of the space they cover) and a
verdict from one vocabulary (`VOCABULARY`). The paper's finding itself is judged by
`paper.judge`; the regime decides what its holding may be called.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

REPRODUCED = "reproduced"
ANALOGUE = "qualitative analogue on a simplified task"
NOT_REPRODUCED = "not reproduced"
NOT_TESTED = "not tested"
PAPER_KIND_RULES = 100_000
PAPER_KIND_COVERAGE = 0.01
VOCABULARY = f"""\
- *{REPRODUCED}*: the paper's finding holds in a regime of the paper's kind: multi-letter
  patterns in inputs of varying length, a rule space of at least {PAPER_KIND_RULES:,} rules of
  which the largest training set covers at most {PAPER_KIND_COVERAGE:.0%} (words shorter than
  the paper's are allowed; the regime table shows the distance);
- *{ANALOGUE}*: the finding, or part of it, holds in a regime that is not of the paper's kind;
- *{NOT_REPRODUCED}*: the finding was tested and does not hold (or holds only in part in a
  regime of the paper's kind);
- *{NOT_TESTED}*: nothing judged the finding."""
INSTRUCTIONS = "dataset.train.instructions"


@dataclass(frozen=True)
class Regime:
    """What kind of task a result was measured on."""

    pattern_length: tuple[int, int]
    replacement_length: tuple[int, int]
    input_length: tuple[int, int]
    alphabet_size: int
    rule_space: int
    instructions: tuple[int, int]
    near_miss_share: float = 0.0

    @property
    def coverage(self) -> float:
        """The share of all possible rules that the largest training set covers."""
        return self.instructions[1] / self.rule_space

    @property
    def paper_kind(self) -> bool:
        """Multi-letter patterns, varying input lengths, a large space sparsely covered."""
        return (
            self.pattern_length[1] >= 2
            and self.input_length[0] < self.input_length[1]
            and self.rule_space >= PAPER_KIND_RULES
            and self.coverage <= PAPER_KIND_COVERAGE
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "coverage": self.coverage, "paper_kind": self.paper_kind}

    @classmethod
    def from_dict(cls, data: dict | None) -> Regime | None:
        """The regime a summary recorded (`to_dict`), or None where it recorded none."""
        if not data:
            return None
        ranges = ("pattern_length", "replacement_length", "input_length", "instructions")
        values = {key: tuple(data[key]) if key in ranges else data[key] for key in _FIELDS}
        return cls(**values)


_FIELDS = (
    "pattern_length",
    "replacement_length",
    "input_length",
    "alphabet_size",
    "rule_space",
    "instructions",
    "near_miss_share",
)


def _paper_rule_space() -> int:
    patterns = sum(26**length for length in range(1, 21))
    return patterns * patterns - patterns


# The paper's main runs (PAPER.md, "Data"): |x|, |y| in 1..20, |z| up to 50, a-z, I up to 10^6.
PAPER_REGIME = Regime((1, 20), (1, 20), (1, 50), 26, _paper_rule_space(), (10, 1_000_000))


def regime_of(rows: list[dict]) -> Regime | None:
    """The regime of an experiment's points (their resolved dataset configs); None when the
    rows hold no dataset config of the paper's task (the default; others have no rule space)."""
    from rewritelab.tasks.families import rule_capacity
    from rewritelab.tasks.registry import DEFAULT_TASK
    from rewritelab.tasks.spec_files import spec_from_dict

    configs = [
        r["config"]["dataset"]
        for r in rows
        if isinstance(r.get("config"), dict) and isinstance(r["config"].get("dataset"), dict)
    ]
    if not configs or any(config.get("task", DEFAULT_TASK) != DEFAULT_TASK for config in configs):
        return None
    specs = [spec_from_dict(_readable(config)) for config in configs]
    train = [spec.train for spec in specs]
    counts = [split.instructions for split in train]
    return Regime(
        pattern_length=_span(split.pattern_length for split in train),
        replacement_length=_span(split.replacement_length for split in train),
        input_length=_span(split.input_length for split in train),
        alphabet_size=max(len(spec.alphabet) for spec in specs),
        rule_space=max(
            rule_capacity(split, len(spec.alphabet))
            for spec, split in zip(specs, train, strict=True)
        ),
        instructions=(min(counts), max(counts)),
        near_miss_share=max(split.near_miss_share for split in train),
    )


def _readable(config: dict) -> dict:
    """A recorded spec (`DatasetSpec.to_dict`) as a config `spec_from_dict` reads."""
    config = copy.deepcopy(config)
    for name in ("train", "test"):
        split = config.get(name, {})
        for key in [key for key, value in split.items() if value is None]:
            del split[key]
    return config


def _span(ranges) -> tuple[int, int]:
    ranges = list(ranges)
    return min(low for low, _ in ranges), max(high for _, high in ranges)


def vocabulary_verdict(judged: str, regime: Regime | None) -> str:
    """The verdict in our vocabulary from a judge's (`paper.judge`) and the regime."""
    from rewritelab.core.paper import NOT_JUDGED, PARTLY
    from rewritelab.core.paper import REPRODUCED as HOLDS

    if judged == NOT_JUDGED:
        return NOT_TESTED
    paper_kind = regime is not None and regime.paper_kind
    if judged == HOLDS and paper_kind:
        return REPRODUCED
    if judged in (HOLDS, PARTLY) and not paper_kind:
        return ANALOGUE
    return NOT_REPRODUCED


def _range(values: tuple[int, int]) -> str:
    low, high = values
    return f"{low}" if low == high else f"{low}–{high}"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value < 1e7 else f"{value:.1e}"


def regime_line(regime: Regime | None) -> str:
    """One short line of the regime, for a table cell."""
    if regime is None:
        return "–"
    return (
        f"|x| {_range(regime.pattern_length)}, |y| {_range(regime.replacement_length)}, "
        f"|z| {_range(regime.input_length)}, {regime.alphabet_size} letters; "
        f"{_count(regime.rule_space)} rules, {_share(regime.coverage)} covered"
    )


def _share(coverage: float) -> str:
    return f"{coverage:.2%}" if coverage >= 1e-4 else f"{coverage:.1e}"


def regime_table(regime: Regime) -> list[str]:
    """Markdown lines: this regime beside the paper's, row by row."""
    rows = [
        ("\\|x\\| (pattern)", _range(PAPER_REGIME.pattern_length), _range(regime.pattern_length)),
        ("\\|y\\| (replacement)", _range(PAPER_REGIME.replacement_length),
         _range(regime.replacement_length)),
        ("\\|z\\| (input)", f"≤ {PAPER_REGIME.input_length[1]}", _range(regime.input_length)),
        ("alphabet", f"{PAPER_REGIME.alphabet_size} letters", f"{regime.alphabet_size} letters"),
        ("rule space", _count(PAPER_REGIME.rule_space), _count(regime.rule_space)),
        ("I (training instructions)", "10–10^6", _range(regime.instructions)),
        ("share of the space covered at the largest I", _share(PAPER_REGIME.coverage),
         _share(regime.coverage)),
        ("inputs with a planted near-miss of x", "–", f"{regime.near_miss_share:.0%}"),
    ]  # fmt: skip
    lines = ["| regime | paper | here |", "|---|---|---|"]
    lines += [f"| {name} | {paper} | {here} |" for name, paper, here in rows]
    kind = "of the paper's kind" if regime.paper_kind else "simplified (not of the paper's kind)"
    return lines + ["", f"Regime: {kind}; see `rewritelab.analysis.regime` for the criteria."]
