"""`rewritelab generate` and `inspect`: bad input is refused in one line, disk stays untouched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from rewritelab.cli.main import main

SMALL = [
    "--instructions",
    "5",
    "--examples-per-instruction",
    "4",
    "--test-instructions",
    "3",
    "--quiet",
]


def tree_digest(directory):
    """Names and contents of every file under `directory` (to prove nothing changed)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def run_cli(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_config(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


BAD_CONFIGS = {
    "alphabet_whitespace": ('alphabet = "a b"\n', "alphabet contains unusable characters"),
    "alphabet_repeats": ('alphabet = "abca"\n', "alphabet repeats letters"),
    "too_many_instructions": (
        'alphabet = "ab"\n[train]\ninstructions = 5\npattern_length = 1\nreplacement_length = 1\n',
        "at most 2 distinct rules",
    ),
    "train_plus_test_too_many": (
        'alphabet = "ab"\n[train]\ninstructions = 2\npattern_length = 1\nreplacement_length = 1\n'
        "[test]\ninstructions = 1\n",
        "at most 2 distinct rules exist",
    ),
    "occurrences_cannot_fit": ("[train]\noccurrences = [1, 20]\n", "need inputs of 400 letters"),
    "inconsistent_counts": (
        "[train]\ninstructions = 10\nexamples_per_instruction = 5\nexamples = 100\n",
        "inconsistent counts",
    ),
    "budget_below_instructions": (
        "[train]\ninstructions = 10\nexamples = 5\n",
        "5 examples cannot cover 10 instructions",
    ),
    "k_cannot_fit": (
        '[train]\nfamilies = ["repeated"]\nk = [1, 30]\n',
        "k = 21 cannot fit pattern_length",
    ),
    "unknown_top_key": ("sede = 3\n", "unknown config key sede"),
    "unknown_split_key": ("[train]\ninstruction = 3\n", "unknown config key train.instruction"),
    "unknown_family": ('[train]\nfamilies = ["zigzag"]\n', "unknown rule family 'zigzag'"),
    "wrong_type": (
        '[train]\ninstructions = "many"\n',
        "train.instructions must be an integer, got 'many'",
    ),
    "bad_noop_share": ("[train]\nnoop_share = 1.5\n", "noop_share must be in [0, 1]"),
    "invalid_toml": ("[train\n", "is not valid TOML"),
    "bad_spread": ('[train]\nspread = "zipf"\n', "train.spread must be one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_in_one_line(tmp_path, capsys, case):
    text, message = BAD_CONFIGS[case]
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    before = tree_digest(tmp_path)
    code, out, err = run_cli(
        [
            "generate",
            "--config",
            write_config(tmp_path, text),
            "--out",
            str(existing),
            "--force",
            "--quiet",
        ],
        capsys,
    )
    assert code == 2
    assert err.startswith("rewritelab: error: ") and message in err
    assert err.count("\n") == 1
    assert tree_digest(tmp_path) == {**before, "spec.toml": tree_digest(tmp_path)["spec.toml"]}


def test_missing_config_and_bad_override(tmp_path, capsys):
    code, _, err = run_cli(
        ["generate", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "cannot read config" in err
    code, _, err = run_cli(
        ["generate", "--set", "train.instructions", "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "override must look like key=value" in err
    assert not (tmp_path / "o").exists()


def test_existing_output_refused_without_force_and_replaced_with_it(tmp_path, capsys):
    out = tmp_path / "data"
    assert run_cli(["generate", "--out", str(out), *SMALL], capsys)[0] == 0
    first = tree_digest(out)
    code, _, err = run_cli(["generate", "--out", str(out), "--seed", "7", *SMALL], capsys)
    assert code == 2 and "already exists" in err
    assert tree_digest(out) == first
    assert (
        run_cli(["generate", "--out", str(out), "--seed", "7", "--force", *SMALL], capsys)[0] == 0
    )
    assert tree_digest(out) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no staging leftovers


def test_flags_and_overrides_reach_the_spec(tmp_path, capsys):
    config = write_config(tmp_path, "[train]\ninstructions = 3\nnoop_share = 0.5\n")
    out = tmp_path / "d"
    code, stdout, _ = run_cli(
        [
            "generate",
            "--config",
            config,
            "--out",
            str(out),
            "--instructions",
            "4",
            "--set",
            "train.examples_per_instruction=6",
            "--set",
            'alphabet="xyz"',
            "--quiet",
        ],
        capsys,
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    train = manifest["config"]["train"]
    assert (train["instructions"], train["examples_per_instruction"], train["noop_share"]) == (
        4,
        6,
        0.5,
    )
    assert manifest["counts"]["train"] == {"examples": 24, "instructions": 4, "noop": 12}
    assert manifest["config"]["alphabet"] == "xyz"
    assert "24 examples" in stdout


def test_yaml_config(tmp_path, capsys):
    pytest.importorskip("yaml")
    config = write_config(tmp_path, "train:\n  instructions: 3\n  noop_share: 0.25\n", "spec.yaml")
    assert (
        run_cli(["generate", "--config", config, "--out", str(tmp_path / "d"), "--quiet"], capsys)[
            0
        ]
        == 0
    )
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["counts"]["train"]["noop"] == 75


def test_inspect_reports_and_detects_tampering(tmp_path, capsys):
    out = tmp_path / "data"
    run_cli(["generate", "--out", str(out), "--noop-share", "0.25", *SMALL], capsys)
    code, stdout, _ = run_cli(["inspect", str(out), "--json"], capsys)
    report = json.loads(stdout)
    assert code == 0 and all(report["checks"].values())
    train = report["splits"]["train"]
    assert (train["examples"], train["instructions"], train["noop_share"]) == (20, 5, 0.25)
    assert train["examples_per_instruction"]["min"] == train["examples_per_instruction"]["max"] == 4

    lines = (out / "train.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["output"] = record["output"] + "a"
    lines[0] = json.dumps(record, ensure_ascii=False)
    (out / "train.jsonl").write_text("\n".join(lines) + "\n")
    code, stdout, _ = run_cli(["inspect", str(out)], capsys)
    assert code == 1
    assert "[FAIL] train.jsonl matches manifest hash" in stdout
    assert "[FAIL] every record is exact" in stdout


def test_inspect_missing_directory(tmp_path, capsys):
    code, _, err = run_cli(["inspect", str(tmp_path / "none")], capsys)
    assert code == 2 and "not a rewritelab dataset" in err


def test_console_script_runs(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rewritelab.cli.main",
            "generate",
            "--out",
            str(tmp_path / "d"),
            *SMALL,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "manifest.json").is_file()
