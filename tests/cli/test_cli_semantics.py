"""`rewritelab apply` and `rewritelab markov`: what they print, where, and with which exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

ALGORITHMS = Path(__file__).resolve().parents[2] / "examples" / "algorithms"
DOUBLE_REVERSE = str(ALGORITHMS / "double_reverse.markov")


def assert_one_line_error(code, out, err, *fragments):
    assert code == 2
    assert out == ""
    assert err.startswith("rewritelab: error: ")
    assert err.count("\n") == 1 and err.endswith("\n"), err
    for fragment in fragments:
        assert fragment in err


def write(tmp_path, text, name="algorithm.markov"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("rule", "word", "printed"),
    [
        ("ab -> c", "aabab", "acab"),
        ("aa -> bac", "caaba", "cbacba"),
        ("iss -> art", "mississippi", "martissippi"),
        ("iss -> art", "canada", "canada"),
        ("-> α", "ab", "αab"),
        ("a ->", "", ""),
    ],
)
def test_apply_prints_the_rewritten_word(rule, word, printed, capsys):
    assert run_cli(["apply", rule, word], capsys) == (0, printed + "\n", "")


def test_apply_as_a_module():
    completed = subprocess.run(
        [sys.executable, "-m", "rewritelab.cli.main", "apply", "ab -> c", "aabab"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, "acab\n", "")


def test_apply_refuses_a_malformed_rule(capsys):
    assert_one_line_error(*run_cli(["apply", "a -> b -> c", "abc"], capsys), "a -> b -> c")
    assert_one_line_error(*run_cli(["apply", "abc", "abc"], capsys), "not a rule")


def test_markov_prints_the_result(capsys):
    code, out, err = run_cli(["markov", DOUBLE_REVERSE, "abb"], capsys)
    assert (code, out) == (0, "abbbba\n")
    assert err == "11 steps, stopped: terminal rule\n"


def test_markov_console_script_with_unicode_markers(tmp_path):
    """The installed `rewritelab` script, markers in the rules and in the printed word."""
    script = Path(sys.executable).with_name("rewritelab")
    if not script.exists():
        pytest.skip("no rewritelab console script next to this interpreter")
    algorithm = write(tmp_path, "α ->. β\n-> α\n")
    completed = subprocess.run(
        [str(script), "markov", algorithm, "ab"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    assert (completed.returncode, completed.stdout) == (0, "βab\n")


def test_markov_trace_goes_to_stderr(capsys):
    code, out, err = run_cli(["markov", DOUBLE_REVERSE, "ab", "--trace"], capsys)
    assert (code, out) == (0, "abba\n")
    steps = [line for line in err.splitlines() if "=>" in line]
    words_after = [line.split("=>")[1].strip() for line in steps]
    assert words_after == ["αab", "aαβab", "aαbβa", "abαβbβa", "abbαβa", "abbaα", "abba"]
    assert "-> α" in steps[0] and "α ->." in steps[-1]
    assert err.splitlines()[-1] == "7 steps, stopped: terminal rule"


def test_markov_without_trace_prints_no_steps(capsys):
    _, _, err = run_cli(["markov", DOUBLE_REVERSE, "ab"], capsys)
    assert "=>" not in err


def test_markov_step_limit_exits_3(tmp_path, capsys):
    algorithm = write(tmp_path, "a -> aa\n")
    code, out, err = run_cli(["markov", algorithm, "a", "--max-steps", "50"], capsys)
    assert (code, out) == (3, "a" * 51 + "\n")
    assert "50 steps" in err and "step limit" in err


def test_markov_no_rule_applies_exits_0(tmp_path, capsys):
    algorithm = write(tmp_path, "ba -> ab\n")
    assert run_cli(["markov", algorithm, "bba"], capsys) == (
        0,
        "abb\n",
        "2 steps, stopped: no rule applies\n",
    )


def test_markov_missing_file(tmp_path, capsys):
    missing = str(tmp_path / "nowhere.markov")
    assert_one_line_error(*run_cli(["markov", missing, "ab"], capsys), "nowhere.markov")


def test_markov_directory_instead_of_file(tmp_path, capsys):
    assert_one_line_error(*run_cli(["markov", str(tmp_path), "ab"], capsys), str(tmp_path))


def test_markov_malformed_rule_names_its_line(tmp_path, capsys):
    algorithm = write(tmp_path, "# header\na -> b\nnot a rule\n")
    assert_one_line_error(*run_cli(["markov", algorithm, "ab"], capsys), "line 3")


def test_markov_empty_algorithm(tmp_path, capsys):
    algorithm = write(tmp_path, "# nothing but comments\n\n")
    assert_one_line_error(*run_cli(["markov", algorithm, "ab"], capsys), "no rules")


def test_markov_negative_step_limit(capsys):
    args = ["markov", DOUBLE_REVERSE, "ab", "--max-steps", "-1"]
    assert_one_line_error(*run_cli(args, capsys), "max_steps")


def test_markov_file_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.markov"
    path.write_bytes("é -> e\n".encode("latin-1"))
    assert_one_line_error(*run_cli(["markov", str(path), "é"], capsys), "latin1.markov")


def test_markov_file_with_byte_order_mark(tmp_path, capsys):
    path = tmp_path / "bom.markov"
    path.write_bytes("a -> b\n".encode("utf-8-sig"))
    assert run_cli(["markov", str(path), "aa"], capsys)[:2] == (0, "bb\n")
