"""The layout's own checks (docs/architecture.md): small modules, short import chains, no
dead code. The layers contract itself is `lint-imports` (pyproject.toml), run by CI."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "rewritelab"
MAX_LINES = 400
# Today's longest: cli.main -> a command module -> the sweep runner -> the train config (or
# the spec reader) -> the task registry -> a task -> its generator -> inputs -> the string
# primitives (or errors); see docs/architecture.md.
MAX_CHAIN = 10


def import_graph() -> dict[str, set[str]]:
    """Module -> the rewritelab modules it imports (at any depth of the file, but not under
    `if TYPE_CHECKING:`, which never runs), by grimp."""
    import grimp

    graph = grimp.build_graph("rewritelab", cache_dir=None, exclude_type_checking_imports=True)
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest path of imports (each module importing the next); a cycle fails."""

    @functools.cache
    def from_module(module: str, stack: frozenset = frozenset()) -> tuple[str, ...]:
        assert module not in stack, f"import cycle through {module}"
        tails = [from_module(m, stack | {module}) for m in sorted(graph[module])]
        return (module, *max(tails, key=len, default=()))

    return list(max((from_module(m) for m in sorted(graph)), key=len))


def test_longest_chain_finds_the_longest_path_and_refuses_cycles():
    graph = {"a": {"b", "c"}, "b": {"d"}, "c": set(), "d": set()}
    assert longest_chain(graph) == ["a", "b", "d"]
    try:
        longest_chain({"a": {"b"}, "b": {"a"}})
    except AssertionError as error:
        assert "cycle" in str(error)
    else:
        raise AssertionError("a cycle was not refused")


def test_no_module_is_over_400_lines():
    sizes = {p.relative_to(SRC): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def test_no_chain_of_imports_is_longer_than_10_modules():
    chain = longest_chain(import_graph())
    assert len(chain) <= MAX_CHAIN, " -> ".join(chain)


def test_vulture_finds_no_dead_code():
    allowlist = Path(__file__).with_name("vulture_allowlist.py")
    benchmarks = SRC.parents[1] / "benchmarks"  # where estimate_mfu is used
    command = ["vulture", str(SRC), str(benchmarks), str(allowlist), "--min-confidence", "60"]
    result = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
