"""The tokenizer: prompt layout, round trips, loss masking, saving, and refusals."""

import json

import numpy as np
import pytest

from rewritelab.core.errors import RewritelabError
from rewritelab.model.tokenizer import SPECIAL_TOKENS, Tokenizer, loss_mask


def test_layout_ids_by_hand():
    tokenizer = Tokenizer("ab")  # ids: <pad>0 <bos>1 <to>2 <in>3 <out>4 <eos>5 a6 b7
    assert tokenizer.vocab_size == 8
    assert tokenizer.encode_prompt("a", "bb", "ab") == [1, 6, 2, 7, 7, 3, 6, 7, 4]
    assert tokenizer.encode_answer("bbb") == [7, 7, 7, 5]
    assert tokenizer.encode_prompt("", "", "") == [1, 2, 3, 4]


def test_decode_stops_at_eos_and_drops_specials():
    tokenizer = Tokenizer("xyz")
    ids = tokenizer.encode_prompt("x", "y", "zz") + tokenizer.encode_answer("zyx")
    answer = ids[len(tokenizer.encode_prompt("x", "y", "zz")) :]
    assert tokenizer.decode(answer) == "zyx"
    assert tokenizer.decode(answer + tokenizer.encode_word("xx")) == "zyx"
    assert tokenizer.decode([tokenizer.bos_id, *tokenizer.encode_word("yy")]) == "yy"


def test_ids_past_the_vocabulary_decode_as_a_character_no_alphabet_holds():
    tokenizer = Tokenizer("xyz")  # ids 0-8; a padded model may emit 9 and up
    ids = [*tokenizer.encode_word("xy"), 9, 40, tokenizer.eos_id]
    assert tokenizer.decode(ids) == "xy\ufffd\ufffd"
    with pytest.raises(RewritelabError, match="U\\+FFFD"):
        Tokenizer("ab\ufffd")


def test_unicode_alphabet_round_trip():
    tokenizer = Tokenizer("abαβ")
    assert tokenizer.decode(tokenizer.encode_answer("βaα")) == "βaα"


def test_character_outside_alphabet_is_refused():
    with pytest.raises(RewritelabError, match="'d'"):
        Tokenizer("abc").encode_prompt("a", "d", "abc")


def test_bad_alphabets_are_refused():
    for alphabet in ("", "aba"):
        with pytest.raises(RewritelabError, match="alphabet"):
            Tokenizer(alphabet)


def test_dataset_alphabet_must_be_covered():
    Tokenizer("abc").check_alphabet("cab", "the dataset")
    Tokenizer("abcd").check_alphabet("ab", "the dataset")
    with pytest.raises(RewritelabError, match="'xy'"):
        Tokenizer("abc").check_alphabet("abxy", "the dataset")


def test_save_load_round_trip(tmp_path):
    Tokenizer("qwerty").save(tmp_path)
    loaded = Tokenizer.load(tmp_path)
    assert loaded == Tokenizer("qwerty")
    state = json.loads((tmp_path / "rewritelab_tokenizer.json").read_text())
    assert state["special_tokens"] == list(SPECIAL_TOKENS)


def test_load_refuses_missing_or_foreign_files(tmp_path):
    with pytest.raises(RewritelabError, match="cannot read tokenizer"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"format": "something-else", "alphabet": "ab"}')
    with pytest.raises(RewritelabError, match="not a"):
        Tokenizer.load(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(RewritelabError, match="cannot read tokenizer"):
        Tokenizer.load(tmp_path)
    # Our current file is read first and must hold the current format.
    (tmp_path / "rewritelab_tokenizer.json").write_text(
        '{"format": "rewritelab-char-tokenizer/1", "alphabet": "ab"}'
    )
    with pytest.raises(RewritelabError, match="not a rewritelab-char-tokenizer/2"):
        Tokenizer.load(tmp_path)


def test_loss_mask_answer_only_by_hand():
    # Row 0: prompt of 4 tokens + answer of 3 (7 tokens); row 1: prompt 3 + answer 2, padded.
    # Target t+1 is predicted at position t; answer targets are tokens 4..6 and 3..4.
    mask = loss_mask(np.array([4, 3]), np.array([7, 5]), width=7)
    expected = np.array(
        [
            # target token: 1  2  3  4  5  6
            [0, 0, 0, 1, 1, 1],
            [0, 0, 1, 1, 0, 0],
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(mask, expected)


def test_loss_mask_whole_sequence_by_hand():
    mask = loss_mask(np.array([4, 3]), np.array([7, 5]), width=7, mode="sequence")
    expected = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=bool)
    np.testing.assert_array_equal(mask, expected)


def test_loss_mask_rejects_unknown_mode():
    with pytest.raises(RewritelabError, match="loss mode"):
        loss_mask(np.array([2]), np.array([3]), 3, mode="prompt")
