"""Every Unicode character is a letter like any other, on every path into rewritelab, and an
argument that is not UTF-8 at all is refused in one line before anything is written.

An alphabet with letters outside the Basic Multilingual Plane (𝔸, 😀), a combining-free accented
letter and a CJK one gives the same dataset bytes whether it comes from a TOML file, a YAML
file, `--set` or the `--alphabet` flag; the rules it draws apply as the rule engine says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from rewritelab.tasks.rules import Rule

ALPHABET = "ab𝔸é中😀"
SIZES = ["--instructions", "4", "--examples-per-instruction", "10", "--test-instructions", "3",
         "--quiet"]  # fmt: skip
SRC = str(Path(__file__).parents[2] / "src")


def _generate(tmp_path: Path, capsys, name: str, *args: str) -> bytes:
    out = tmp_path / name
    code, _, err = run_cli(["generate", "--out", str(out), *SIZES, *args], capsys)
    assert code == 0, err
    return b"".join((out / split).read_bytes() for split in ("train.jsonl", "test.jsonl"))


def test_an_alphabet_beyond_the_bmp_gives_the_same_dataset_on_every_path(tmp_path, capsys):
    toml = tmp_path / "alphabet.toml"
    toml.write_text(f'alphabet = "{ALPHABET}"\n', encoding="utf-8")
    yaml = tmp_path / "alphabet.yaml"
    yaml.write_text(f'alphabet: "{ALPHABET}"\n', encoding="utf-8")
    datasets = {
        "flag": _generate(tmp_path, capsys, "flag", "--alphabet", ALPHABET),
        "set": _generate(tmp_path, capsys, "set", "--set", f'alphabet="{ALPHABET}"'),
        "toml": _generate(tmp_path, capsys, "toml", "--config", str(toml)),
        "yaml": _generate(tmp_path, capsys, "yaml", "--config", str(yaml)),
    }
    assert len(set(datasets.values())) == 1, "the paths disagree"
    records = [json.loads(line) for line in datasets["flag"].decode("utf-8").splitlines()]
    assert {c for r in records for c in r["z"]} <= set(ALPHABET)
    assert any(c in r["z"] for r in records for c in "𝔸😀")  # the astral letters are used
    for record in records:  # and every output is what the rule engine gives
        assert record["output"] == Rule(record["x"], record["y"]).apply(record["z"])


def test_apply_treats_astral_letters_as_single_letters(capsys):
    code, out, _ = run_cli(["apply", "𝔸😀 -> é", "a𝔸😀𝔸😀"], capsys)
    assert (code, out) == (0, "aé𝔸😀\n")


@pytest.mark.parametrize("flag", ["--out", "--config"])
def test_an_argument_that_is_not_utf8_is_refused_in_one_line(tmp_path, flag):
    bad = os.fsencode(tmp_path) + b"/run\xff"
    args = [b"generate", b"--out", bad] if flag == "--out" else [b"generate", b"--out",
            os.fsencode(tmp_path / "d"), b"--config", bad]  # fmt: skip
    result = subprocess.run([os.fsencode(sys.executable), b"-m", b"rewritelab.cli.main", *args],
                            env={**os.environ, "PYTHONPATH": SRC}, capture_output=True)  # fmt: skip
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert b"not valid UTF-8" in lines[0] and b"run\\xff" in lines[0]
    assert list(tmp_path.iterdir()) == []
