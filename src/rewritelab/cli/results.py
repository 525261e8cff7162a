"""`results export` and `results prune`: a results database as a tidy table, and kept tidy."""

from __future__ import annotations

import argparse
from pathlib import Path

from rewritelab.core.errors import RewritelabError


def cmd_export(args: argparse.Namespace) -> int:
    from rewritelab.analysis.results_frame import export_results

    count = export_results(args.results, args.out, args.format, force=args.force)
    print(f"wrote {args.out} ({count} rows: a row per run and evaluation point)")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from rewritelab.sweep.database import ResultsDatabase, current_rows

    if not Path(args.results).is_file():  # never create a database to prune it
        raise RewritelabError(f"no results database at {args.results}")
    database = ResultsDatabase(args.results, readonly=args.dry_run)
    try:
        kept, superseded = current_rows(database.rows())
        failed = [row for row in kept if row["status"] == "failed"] if args.failed else []
        doomed = [row["point_id"] for row in superseded + failed]
        if not args.dry_run:
            database.delete(doomed)
    finally:
        database.close()
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(doomed)} rows from {args.results}: {len(superseded)} superseded by a "
          f"later successful run of their point, {len(failed)} failed")  # fmt: skip
    return 0


def add_results_commands(commands) -> None:
    results = commands.add_parser("results", help="a results database as a table; prune it")
    actions = results.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="a row per run and evaluation point (pandas)")
    export.add_argument("results", help="results database (SQLite)")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--out", required=True, help="the file to write")
    export.add_argument("--force", action="store_true", help="replace an existing file")
    export.set_defaults(handler=cmd_export)
    prune = actions.add_parser(
        "prune", help="remove rows superseded by a later successful run of the same point"
    )
    prune.add_argument("results", help="results database (SQLite)")
    prune.add_argument("--failed", action="store_true", help="also points that never succeeded")
    prune.add_argument("--dry-run", action="store_true", help="count, change nothing")
    prune.set_defaults(handler=cmd_prune)
