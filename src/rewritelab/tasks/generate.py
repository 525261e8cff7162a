"""Generate a dataset: validate its spec, ask its task to build and write the splits, write
its card (`dataset_card`), and replace the output directory only once the new dataset is
complete."""

from __future__ import annotations

import os
import shutil
from contextlib import nullcontext
from pathlib import Path

from rewritelab.core.errors import RewritelabError
from rewritelab.core.killpoints import pause_at
from rewritelab.core.locks import directory_lock
from rewritelab.core.progress import progress_bar
from rewritelab.tasks.dataset_card import write_card
from rewritelab.tasks.registry import get_task, validate_spec
from rewritelab.tasks.spec import DatasetSpec
from rewritelab.tasks.storage import (
    check_output,
    recover_leftovers,
    replace_directory,
    staging_path,
)


def generate_dataset(
    spec: DatasetSpec, out_dir: str | Path, force: bool = False, progress: bool = False
) -> dict:
    """Generate the dataset of `spec` into `out_dir`; return its manifest.

    Refuses an existing `out_dir` unless `force`, and even then replaces only a rewritelab
    dataset (a directory holding our manifest). Everything is checked before any work, and the
    old directory is replaced only once the new one is complete (see `replace_directory`).
    """
    task = get_task(validate_spec(spec).task)
    out_dir = Path(out_dir)
    recover_leftovers(out_dir)
    check_output(out_dir, force)
    replacing = directory_lock(out_dir, "dataset") if out_dir.is_dir() else nullcontext()
    with replacing, progress_bar(progress, total=4, unit="stage") as bar:
        splits = task.build(spec, bar)
        bar.set_description("writing")
        staging = staging_path(out_dir, "partial", os.getpid())
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
            manifest = task.write(spec, splits, staging)
            write_card(task, manifest, staging)
            pause_at("written")
            replace_directory(staging, out_dir)
        except OSError as error:
            raise RewritelabError(f"cannot write dataset {out_dir}: {error.strerror}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        bar.update()
    return manifest
