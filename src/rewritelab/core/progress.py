"""Progress: a live bar on a terminal, log lines elsewhere.

When stderr is a terminal, progress is a tqdm bar. When it is not (a log file, a pipe, a
batch job), redrawn frames would fill the log, so progress is one line every
`REWRITELAB_PROGRESS_EVERY_S` seconds (30 by default) and one at the end: plain text, or one
JSON object a line when `REWRITELAB_LOG_FORMAT=json` (`rewritelab --log-format json`). The
settings live in the environment so that sweep workers inherit them.
"""

from __future__ import annotations

import json
import os
import sys
import time

from tqdm import tqdm

EVERY_S_ENV = "REWRITELAB_PROGRESS_EVERY_S"
FORMAT_ENV = "REWRITELAB_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
TEXT_LINE = "{desc}{n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def progress_bar(enabled: bool = True, unit: str = "step", **options) -> tqdm:
    """A tqdm bar (`options` as tqdm's) where stderr is a terminal and the log format is text;
    otherwise `LogLines` with the same interface; a silent one when not `enabled`."""
    options["unit"] = unit
    if not enabled:
        return tqdm(disable=True, **options)
    log_format = os.environ.get(FORMAT_ENV, "text")
    if log_format == "text" and sys.stderr.isatty():
        return tqdm(**options)
    every_s = float(os.environ.get(EVERY_S_ENV, "30"))
    return LogLines(every_s=every_s, as_json=log_format == "json", **options)


class LogLines(tqdm):
    """tqdm's counting and timing, written as one line per `every_s` seconds and one at the
    end instead of a redrawn bar. tqdm's own output goes nowhere; `display` writes the lines."""

    def __init__(self, every_s: float, as_json: bool, **options):
        self.every_s, self.as_json, self.fields, self.last_line = every_s, as_json, {}, None
        self.sink = open(os.devnull, "w")  # closed in `close`
        super().__init__(file=self.sink, bar_format=TEXT_LINE, mininterval=0, **options)

    def set_postfix(self, ordered_dict=None, refresh=True, **fields):
        self.fields = {**(ordered_dict or {}), **fields}
        super().set_postfix(ordered_dict, refresh=refresh, **fields)

    def display(self, msg=None, pos=None) -> bool:
        now = time.monotonic()
        final = self.disable  # tqdm sets it before the last display of `close`
        if not final and self.last_line is not None and now - self.last_line < self.every_s:
            return True
        self.last_line = now
        print(self.line(), file=sys.stderr, flush=True)
        return True

    def line(self) -> str:
        if not self.as_json:
            return self.format_meter(**{**self.format_dict, "bar_format": TEXT_LINE})
        facts = self.format_dict
        record = {"progress": self.desc or "", "n": facts["n"], "total": facts["total"],
                  "unit": facts["unit"], "elapsed_s": round(facts["elapsed"], 2),
                  "rate": round(facts["n"] / facts["elapsed"], 3) if facts["elapsed"] else None,
                  **{key: _number(value) for key, value in self.fields.items()}}  # fmt: skip
        return json.dumps(record)

    def close(self) -> None:
        super().close()
        self.sink.close()


def _number(value):
    """A postfix value as a number where it reads as one (tqdm's postfixes are often text)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
