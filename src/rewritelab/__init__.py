"""rewritelab: controlled research on instruction tuning with Markov-algorithm rewrite tasks.

The core (rules, specs, dataset generation) needs only numpy; training needs the `train` extra.
"""

from rewritelab.core.errors import RewritelabError  # noqa: E402
from rewritelab.core.version import __version__  # noqa: E402
from rewritelab.tasks.rules import Halt, MarkovAlgorithm, Rule, RunResult, count_occurrences  # noqa: E402

__all__ = [
    "__version__",
    "Halt",
    "MarkovAlgorithm",
    "Rule",
    "RunResult",
    "RewritelabError",
    "count_occurrences",
]
