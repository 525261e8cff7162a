"""What is kept of a rewrite-task record once encoded: the rule, the words, the classes that
accuracy is broken down by."""

from __future__ import annotations

# Record fields kept per example for the accuracy breakdown (the optional ones where a dataset
# has them: near-misses).
BREAKDOWN_FIELDS = ("instruction", "noop", "occurrences")


OPTIONAL_BREAKDOWN_FIELDS = ("near_miss_kind",)


def kept_fields(record: dict) -> dict:
    """What an encoded split keeps of a single-rule record: the rule, the words, the classes."""
    kept = {key: record[key] for key in ("x", "y", "z", "output", *BREAKDOWN_FIELDS)}
    return kept | {key: record[key] for key in OPTIONAL_BREAKDOWN_FIELDS if key in record}
