"""What a result came from: the source commit (with a dirty flag) and the generator's code digest.

A cached dataset is only as current as the code that generated it, so dataset and sweep-point
ids include `generator_digest()`: the SHA-256 of the code of `rewritelab.tasks.generate` and
of every rewritelab module it imports, found by reading the imports (nobody has to remember to bump
a version when the generator changes). Code means the syntax tree without docstrings: reformatting,
comments and documentation leave the digest, and so every cached dataset and finished sweep
point, as they are.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/rewritelab
GENERATOR_ROOT = "rewritelab.tasks.generate"


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
        code = source_code(_module_file(module).read_text(encoding="utf-8"))
        digest.update(module.encode() + b"\0" + code.encode() + b"\0")
    return digest.hexdigest()[:16]


def source_code(source: str) -> str:
    """What a module computes, as text: its syntax tree without docstrings, empty fields left
    out (so that a field a newer Python adds, such as `type_params`, does not change it)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and _is_docstring(body[0]):
            node.body = body[1:] or [ast.Pass()]
    return _shape(tree)


def _is_docstring(statement: ast.stmt) -> bool:
    value = statement.value if isinstance(statement, ast.Expr) else None
    return isinstance(value, ast.Constant) and isinstance(value.value, str)


def _shape(node) -> str:
    if isinstance(node, ast.AST):
        fields = (f"{name}={_shape(value)}" for name, value in ast.iter_fields(node)
                  if value is not None and value != [])  # fmt: skip
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return f"[{', '.join(map(_shape, node))}]"
    return repr(node)
