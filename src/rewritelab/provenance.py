"""What a result came from: the source commit (with a dirty flag) and the generator's code digest.

A cached dataset is only as current as the code that generated it, so dataset and sweep-point
ids include `generator_digest()`: the SHA-256 of the source of `rewritelab.datasets` and of
every rewritelab module it imports, found by reading the imports (nobody has to remember to bump
a version when the generator changes).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
GENERATOR_ROOT = "rewritelab.datasets"


def git_hash() -> str | None:
    """The commit of the rewritelab source tree, `+dirty` if it has uncommitted changes; None
    outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return f"{commit}+dirty" if status else commit


def _git(*arguments: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *arguments], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _module_file(module: str) -> Path | None:
    parts = module.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    """The rewritelab modules a source file imports (at top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "rewritelab" and _module_file(n))
    return found


@functools.cache
def generator_digest(root: str = GENERATOR_ROOT) -> str:
    """SHA-256 (16 hex digits) over the source files of `root` and the modules it imports."""
    seen, todo = set(), [root]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imported_modules(_module_file(module)))
    digest = hashlib.sha256()
    for module in sorted(seen):
        digest.update(module.encode() + b"\0" + _module_file(module).read_bytes() + b"\0")
    return digest.hexdigest()[:16]
