"""The algorithm task's generator: each split draws random Markov algorithms that halt, then
inputs, and records what the interpreter (`rules.MarkovAlgorithm.run`) does with them.

Patterns of one algorithm are distinct and none contains an earlier one (so every rule can
fire); markers never occur in inputs and a run counts only if it halts on a marker-free word
within `max_steps`; exactly `round(noop_share * N)` inputs are no-ops; test algorithms never
occur in training, as whole rule lists or rule by rule (`disjoint`); `classic.jsonl` runs the
example algorithms that fit. A record holds `algorithm`, `rules` (`{x, y, terminal}` each),
`rule_count`, `input`, `output`, `step_output`, `noop`, `steps`, `halt` and `trace`. The full
rules of a draw: docs/notebook.md, "How algorithms are drawn".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rewritelab.core.errors import RewritelabError
from rewritelab.tasks.allocation import assign, exact_allocation
from rewritelab.tasks.allocation import named_stream as stream
from rewritelab.tasks.rules import MarkovAlgorithm, Rule, RunResult
from rewritelab.tasks.spec import DatasetSpec, SplitSpec

STREAMS = (
    "train_algorithms",
    "test_algorithms",
    "train_spread",
    "train_inputs",
    "seen_test_spread",
    "seen_test_inputs",
    "test_spread",
    "test_inputs",
    "classic_inputs",
)
SPLIT_FILES = {
    "train": "train.jsonl",
    "seen_test": "seen_test.jsonl",
    "test": "test.jsonl",
    "classic": "classic.jsonl",
}
CLASSIC_DIR = Path(__file__).resolve().parents[4] / "examples" / "algorithms"


# ---------------------------------------------------------------- algorithms


# ---------------------------------------------------------------- inputs and runs


# ---------------------------------------------------------------- splits and records


Key = tuple[Rule, ...]  # an algorithm's identity: its rule list


def unmarked(rules: Key) -> tuple[tuple[str, str], ...]:
    """A rule list without its terminal marks: two algorithms that differ only in which rules
    stop the run are the same algorithm to a disjointness check (an unseen algorithm must
    differ from every training one in its rewrites, not only in where it halts)."""
    return tuple((rule.x, rule.y) for rule in rules)


PROBE_INPUTS = 8  # fresh inputs a drawn algorithm must halt on to be kept


MAX_ALGORITHM_DRAWS = 2000  # candidate algorithms rejected in a row before giving up


MAX_INPUT_DRAWS = 100  # inputs per example before giving up


MAX_PATTERN_DRAWS = 20  # draws of one rule's pattern (or replacement) before dropping the algorithm


def below(rng: np.random.Generator, n: int) -> int:
    """A uniform integer in [0, n) (scalar draws from `random()` are cheap)."""
    return int(rng.random() * n)


def between(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return bounds[0] + below(rng, bounds[1] - bounds[0] + 1)


def random_word(rng: np.random.Generator, letters: str, length: int) -> str:
    return "".join(letters[i] for i in rng.integers(0, len(letters), size=length).tolist())


@dataclass(frozen=True)
class AlgorithmSampler:
    """Draws random algorithms of one split's shape; `None` when a draw gets stuck."""

    split: SplitSpec
    alphabet: str

    @property
    def letters(self) -> str:
        return self.alphabet + self.split.markers

    def draw(self, rng: np.random.Generator) -> MarkovAlgorithm | None:
        patterns: list[str] = []
        rules = []
        for _ in range(between(rng, self.split.rules)):
            x = self._pattern(rng, patterns)
            y = self._replacement(rng, x)
            if x is None or y is None:
                return None
            patterns.append(x)
            rules.append(Rule(x, y, terminal=rng.random() < self.split.terminal_share))
        return MarkovAlgorithm(tuple(rules))

    def _pattern(self, rng: np.random.Generator, earlier: list[str]) -> str | None:
        """A pattern containing no earlier one (which would shadow it, so it could never fire)."""
        for _ in range(MAX_PATTERN_DRAWS):
            x = random_word(rng, self.letters, between(rng, self.split.pattern_length))
            if not any(p in x for p in earlier):
                return x
        return None

    def _replacement(self, rng: np.random.Generator, x: str | None) -> str | None:
        for _ in range(MAX_PATTERN_DRAWS):
            y = random_word(rng, self.letters, between(rng, self.split.replacement_length))
            if y != x:
                return y
        return None


def plant_input(
    rng: np.random.Generator, algorithm: MarkovAlgorithm, alphabet: str, lengths: tuple[int, int]
) -> str | None:
    """A word holding the patterns of a random number of the algorithm's rules (None: none fit)."""
    plantable = [r.x for r in algorithm.rules if set(r.x) <= set(alphabet)]
    wanted = 1 + below(rng, max(1, len(plantable)))
    chosen: list[str] = []
    for index in rng.permutation(len(plantable)).tolist():
        if len(chosen) < wanted and sum(map(len, chosen)) + len(plantable[index]) <= lengths[1]:
            chosen.append(plantable[index])
    if not chosen:
        return None
    planted = sum(map(len, chosen))
    filler = random_word(
        rng, alphabet, between(rng, (max(lengths[0], planted), lengths[1])) - planted
    )
    gaps = sorted(below(rng, len(filler) + 1) for _ in chosen)
    pieces, previous = [], 0
    for gap, pattern in zip(gaps, chosen, strict=True):
        pieces += [filler[previous:gap], pattern]
        previous = gap
    return "".join(pieces) + filler[previous:]


def noop_input(
    rng: np.random.Generator, algorithm: MarkovAlgorithm, alphabet: str, lengths: tuple[int, int]
) -> str | None:
    """A word no rule applies to, letter by letter never completing a pattern (None: stuck)."""
    patterns = [r.x for r in algorithm.rules]
    word = ""
    for _ in range(between(rng, lengths)):
        allowed = [c for c in alphabet if not any((word + c).endswith(p) for p in patterns)]
        if not allowed:
            return None
        word += allowed[below(rng, len(allowed))]
    return word


def halting_run(algorithm: MarkovAlgorithm, word: str, split: SplitSpec) -> RunResult | None:
    """The traced run of `word`, if it halts within `max_steps` on a word free of markers."""
    result = algorithm.run(word, max_steps=split.max_steps, trace=True)
    if not result.finished or any(marker in result.output for marker in split.markers):
        return None
    return result


def draw_example(
    rng: np.random.Generator,
    algorithm: MarkovAlgorithm,
    alphabet: str,
    split: SplitSpec,
    noop: bool,
    attempts: int = MAX_INPUT_DRAWS,
) -> tuple[str, RunResult] | None:
    """An input of the requested kind on which the algorithm halts, and its run (None: none)."""
    draw_input = noop_input if noop else plant_input
    for _ in range(attempts):
        word = draw_input(rng, algorithm, alphabet, split.input_length)
        result = None if word is None else halting_run(algorithm, word, split)
        if result is not None:
            return word, result
    return None


def probe_kinds(split: SplitSpec) -> list[bool]:
    """The no-op flags of the probe inputs: the kinds of input the split will ask for."""
    if split.noop_share in (0, 1):
        return [split.noop_share == 1] * PROBE_INPUTS
    return [index % 2 == 1 for index in range(PROBE_INPUTS)]


def draw_algorithms(
    split: SplitSpec,
    name: str,
    alphabet: str,
    rng: np.random.Generator,
    taken: set[tuple] = frozenset(),
    taken_rules: set[tuple[str, str]] = frozenset(),
) -> list[MarkovAlgorithm]:
    """`split.instructions` distinct algorithms that halt on probe inputs, none equal to one in
    `taken` (rule lists without terminal marks, `unmarked`)."""
    sampler = AlgorithmSampler(split, alphabet)
    chosen: dict[Key, MarkovAlgorithm] = {}
    rejected = 0  # candidates rejected since the last one kept
    while len(chosen) < split.instructions and rejected < MAX_ALGORITHM_DRAWS:
        rejected += 1
        algorithm = sampler.draw(rng)
        if (
            algorithm is None
            or algorithm.rules in chosen
            or unmarked(algorithm.rules) in taken
            or any((r.x, r.y) in taken_rules for r in algorithm.rules)
        ):
            continue
        probes = (
            draw_example(rng, algorithm, alphabet, split, noop, 1) for noop in probe_kinds(split)
        )
        if all(probes):
            chosen[algorithm.rules] = algorithm
            rejected = 0
    if len(chosen) < split.instructions:
        raise RewritelabError(
            f"{name}: found only {len(chosen)} of {split.instructions} distinct algorithms that "
            f"halt within max_steps = {split.max_steps}: raise max_steps or terminal_share, "
            "lower rules, widen the lengths (or disjointness excludes too many)"
        )
    return list(chosen.values())


@dataclass
class AlgorithmSplit:
    """One split in memory: its algorithms (with ids) and its records in file order."""

    ids: list[int]
    algorithms: list[MarkovAlgorithm]
    records: list[dict]

    @property
    def counts(self) -> dict:
        """Headline counts, with the single-rule task's keys (instructions = algorithms)."""
        used = {record["algorithm"] for record in self.records}
        noops = sum(record["noop"] for record in self.records)
        return {"examples": len(self.records), "instructions": len(used), "noop": noops}


def make_record(algorithm_id: int, algorithm: MarkovAlgorithm, word: str, run: RunResult) -> dict:
    """The JSON record of one halted run."""
    trace = [step.word for step in run.trace]
    return {
        "algorithm": algorithm_id,
        "rules": [
            {"x": rule.x, "y": rule.y, "terminal": rule.terminal} for rule in algorithm.rules
        ],
        "rule_count": len(algorithm.rules),
        "input": word,
        "output": run.output,
        "step_output": trace[0] if trace else word,
        "noop": run.steps == 0,
        "steps": run.steps,
        "halt": run.halt.name.lower(),
        "trace": trace,
    }


def make_split(
    spec: DatasetSpec,
    split: SplitSpec,
    ids: list[int],
    algorithms: list[MarkovAlgorithm],
    name: str,
    total: int,
) -> AlgorithmSplit:
    """`total` examples of `split`'s composition spread over `algorithms`, each run to its end."""
    rng = stream(spec.seed, f"{name}_spread", STREAMS)
    assignment = assign(rng, len(algorithms), total, split.spread, split.alpha)
    noops = exact_allocation(rng, total, np.array([1 - split.noop_share, split.noop_share])) == 1
    inputs = stream(spec.seed, f"{name}_inputs", STREAMS)
    records = []
    for row, noop in zip(assignment.tolist(), noops.tolist(), strict=True):
        example = draw_example(inputs, algorithms[row], spec.alphabet, split, noop)
        if example is None:
            raise RewritelabError(
                f"{name}: algorithm {ids[row]} found no input of length {list(split.input_length)}"
                f" it halts on within max_steps = {split.max_steps}; raise max_steps"
            )
        records.append(make_record(ids[row], algorithms[row], *example))
    return AlgorithmSplit(ids, algorithms, records)


def classic_algorithms(letters: str, directory: Path = CLASSIC_DIR) -> dict[str, MarkovAlgorithm]:
    """The example algorithms (file stem -> algorithm) written only with `letters`."""
    fitting = {}
    for path in sorted(directory.glob("*.markov")) if directory.is_dir() else []:
        algorithm = MarkovAlgorithm.parse(path.read_text(encoding="utf-8-sig"))
        if all(set(rule.x + rule.y) <= set(letters) for rule in algorithm.rules):
            fitting[path.stem] = algorithm
    return fitting


def make_classic(spec: DatasetSpec, first_id: int, classics: dict[str, MarkovAlgorithm]) -> tuple:
    """The classic split and the names used (id -> name) and left out (name -> why)."""
    split = dataclasses.replace(spec.test, markers=all_markers(spec))
    per = max(1, spec.test.total_examples // spec.test.instructions)
    rng = stream(spec.seed, "classic_inputs", STREAMS)
    data, used, skipped = AlgorithmSplit([], [], []), {}, {}
    for name, algorithm in classics.items():
        used_letters = {c for rule in algorithm.rules for c in rule.x + rule.y}
        letters = "".join(c for c in spec.alphabet if c in used_letters)
        records = []
        for _ in range(per * MAX_INPUT_DRAWS):
            if len(records) == per:
                break
            word = random_word(rng, letters, between(rng, split.input_length))
            run = halting_run(algorithm, word, split)
            if run is not None:
                records.append(make_record(first_id + len(used), algorithm, word, run))
        if len(records) < per:
            skipped[name] = f"halted on {len(records)} of {per} inputs within max_steps"
            continue
        data.ids.append(first_id + len(used))
        data.algorithms.append(algorithm)
        data.records += records
        used[first_id + len(used)] = name
    return data, used, skipped


def all_markers(spec: DatasetSpec) -> str:
    """Every marker letter either split may use, in first-seen order."""
    return "".join(dict.fromkeys(spec.train.markers + spec.test.markers))


def build_algorithm_splits(spec: DatasetSpec, bar: tqdm | None = None) -> dict:
    """All splits of a validated algorithm-task spec, in memory, plus the classic summary."""
    bar = bar or tqdm(disable=True)
    bar.set_description("drawing algorithms")
    classics = classic_algorithms(spec.alphabet + all_markers(spec)) if spec.classic else {}
    by_rules = spec.disjoint == "rules"
    classic_rules = {(r.x, r.y) for a in classics.values() for r in a.rules}
    train_algorithms = draw_algorithms(
        spec.train, "train", spec.alphabet, stream(spec.seed, "train_algorithms", STREAMS),
        taken={unmarked(a.rules) for a in classics.values()},
        taken_rules=classic_rules if by_rules else set(),
    )  # fmt: skip
    train_rules = {(r.x, r.y) for a in train_algorithms for r in a.rules}
    test_algorithms = draw_algorithms(
        spec.test, "test", spec.alphabet, stream(spec.seed, "test_algorithms", STREAMS),
        taken={unmarked(a.rules) for a in train_algorithms},
        taken_rules=train_rules if by_rules else set(),
    )  # fmt: skip
    train_ids = list(range(len(train_algorithms)))
    test_ids = list(range(len(train_ids), len(train_ids) + len(test_algorithms)))
    bar.update()
    bar.set_description("train inputs")
    train = make_split(
        spec, spec.train, train_ids, train_algorithms, "train", spec.train.total_examples
    )
    bar.update()
    bar.set_description("test inputs")
    seen_split = dataclasses.replace(spec.train, spread="uniform")
    splits = {
        "train": train,
        "seen_test": make_split(
            spec, seen_split, train_ids, train_algorithms, "seen_test", spec.seen_test_examples
        ),
        "test": make_split(
            spec, spec.test, test_ids, test_algorithms, "test", spec.test.total_examples
        ),
    }
    classic, used, skipped = make_classic(spec, len(train_ids) + len(test_ids), classics)
    if classic.records:
        splits["classic"] = classic
    bar.update()
    return {"splits": splits, "classic": {"used": used, "skipped": skipped}}
