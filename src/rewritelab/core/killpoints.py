"""Named moments where a kill test can stop a command (`kill -9` lands exactly there).

When the environment variable REWRITELAB_PAUSE_AT names a moment, the process prints
`paused at MOMENT` on stderr and sleeps (REWRITELAB_PAUSE_S seconds, default 60) when it gets
there. Unset, `pause_at` does nothing. Moments: `written`, `swapping`, `half-swapped`,
`swapped` (a dataset replacing another, `rewritelab.tasks.generate`); `run-creating`,
`checkpoint-written`, `checkpoint-published`, `latest-updated`, `metrics-rewritten` (a
training run, `rewritelab.training.runs`).
"""

from __future__ import annotations

import os
import sys
import time


def pause_at(moment: str) -> None:
    """Sleep at `moment` when REWRITELAB_PAUSE_AT names it (kill tests only)."""
    if os.environ.get("REWRITELAB_PAUSE_AT") == moment:
        print(f"paused at {moment}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("REWRITELAB_PAUSE_S", "60")))
