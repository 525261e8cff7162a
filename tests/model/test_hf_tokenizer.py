"""Saved model directories open in Hugging Face: AutoTokenizer and pipeline("text-generation")
agree with our tokenizer and our greedy decoding; older directories still load."""

import itertools
import json

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from rewritelab.evaluation.evaluate import predict
from rewritelab.evaluation.exact_match import greedy_generate
from rewritelab.model.files import load_model, save_model
from rewritelab.model.gpt import ModelConfig, build_model
from rewritelab.model.prompts import is_char_tokenizer_dir
from rewritelab.model.tokenizer import SPECIAL_TOKENS, Tokenizer
from rewritelab.tasks.storage import read_records
from rewritelab.training.pretrain import PretrainConfig

PROMPTS = [("ab", "c", "aabab"), ("c", "", "ccc"), ("a", "bb", "b")]


def prompt_text(x: str, y: str, z: str) -> str:
    return f"<bos>{x}<to>{y}<in>{z}<out>"


@pytest.fixture(scope="module")
def untrained_dir(tmp_path_factory):
    """A freshly initialised tiny model over "abc", saved by save_model."""
    directory = tmp_path_factory.mktemp("untrained")
    tokenizer = Tokenizer("abc")
    model = build_model(ModelConfig(layers=1, heads=2, width=32, context=64), tokenizer, seed=3)
    save_model(model, tokenizer, directory)
    return directory


def test_auto_tokenizer_encodes_prompts_as_ours(untrained_dir):
    hf = AutoTokenizer.from_pretrained(untrained_dir)
    # By hand: <bos>=1 a=6 b=7 <to>=2 c=8 <in>=3 ... <out>=4.
    assert hf("<bos>ab<to>c<in>aabab<out>")["input_ids"] == [1, 6, 7, 2, 8, 3, 6, 6, 7, 6, 7, 4]
    ours = Tokenizer.load(untrained_dir)
    for x, y, z in PROMPTS:
        text = prompt_text(x, y, z)
        for add_special_tokens in (True, False):  # nothing is added around the text either way
            ids = hf.encode(text, add_special_tokens=add_special_tokens)
            assert ids == ours.encode_prompt(x, y, z)
        assert hf.decode(ids) == text
    answer = ours.encode_answer("cab")
    assert hf.decode(answer, skip_special_tokens=True) == ours.decode(answer) == "cab"
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (1, 5, 0)


def test_pretrain_alphabet_round_trips_whitespace(tmp_path):
    tokenizer = Tokenizer(PretrainConfig(extra_alphabet="é").alphabet())
    tokenizer.save(tmp_path)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    text = 'def f(x):\n    return x  <  2 . "a\'b"\n\n  é~\n'
    ids = hf.encode(text)
    assert ids == tokenizer.encode_word(text)
    assert len(ids) == len(text)
    assert hf.decode(ids) == text
    # The special tokens are matched whole inside text, as one id each.
    assert hf.encode(" <eos>\n") == [
        tokenizer.encode_word(" ")[0],
        5,
        tokenizer.encode_word("\n")[0],
    ]


def test_character_outside_the_alphabet_is_refused(untrained_dir):
    hf = AutoTokenizer.from_pretrained(untrained_dir)
    with pytest.raises(Exception, match="UNK"):
        hf.encode("abd")


def test_pipeline_continues_as_our_greedy_decoding_on_a_trained_model(tiny_run):
    data, run, _ = tiny_run
    generator = pipeline("text-generation", model=str(run / "model"), device="cpu")
    records = list(itertools.islice(read_records(data / "seen_test.jsonl"), 6))
    correct = 0
    for record in records:
        x, y, z = record["x"], record["y"], record["z"]
        answer, _ = predict(run, f"{x} -> {y}", z, device="cpu")
        correct += answer == record["output"]
        text = prompt_text(x, y, z)
        # A budget well past the answer: a pipeline not stopping at <eos> would add characters.
        result = generator(text, do_sample=False, max_new_tokens=12)
        assert result[0]["generated_text"] == text + answer
    assert correct >= 4  # the model is trained, so the answers compared are real ones


def test_pipeline_ids_match_a_greedy_loop_on_an_untrained_model(untrained_dir):
    model, tokenizer = load_model(untrained_dir)
    generator = pipeline("text-generation", model=str(untrained_dir), device="cpu")
    for x, y, z in PROMPTS:
        prompt = tokenizer.encode_prompt(x, y, z)
        ours = greedy_generate(model, torch.tensor([prompt]), 8, tokenizer.eos_id)[0].tolist()
        if tokenizer.eos_id in ours:
            ours = ours[: ours.index(tokenizer.eos_id) + 1]
        result = generator(
            prompt_text(x, y, z), do_sample=False, max_new_tokens=8, return_tensors=True
        )
        assert result[0]["generated_token_ids"] == prompt + ours


def test_saved_directory_holds_both_tokenizers(untrained_dir):
    state = json.loads((untrained_dir / "rewritelab_tokenizer.json").read_text())
    assert state["format"] == "rewritelab-char-tokenizer/2"
    assert state["alphabet"] == "abc" and state["special_tokens"] == list(SPECIAL_TOKENS)
    vocab = json.loads((untrained_dir / "tokenizer.json").read_text())["model"]["vocab"]
    assert vocab == {token: i for i, token in enumerate([*SPECIAL_TOKENS, "a", "b", "c"])}
    generation = json.loads((untrained_dir / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"]) == (1, 5)
    assert is_char_tokenizer_dir(untrained_dir)


def test_format_1_directories_still_load(tmp_path):
    """A model saved before this change: our state in tokenizer.json, no HF tokenizer files."""
    tokenizer = Tokenizer("abc")
    model = build_model(ModelConfig(layers=1, heads=2, width=32, context=64), tokenizer, seed=3)
    save_model(model, tokenizer, tmp_path)
    for name in ("rewritelab_tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).unlink()
    legacy = {
        "format": "rewritelab-char-tokenizer/1",
        "alphabet": "ab\n c",
        "special_tokens": list(SPECIAL_TOKENS),
        "layout": "<bos> x <to> y <in> z <out> output <eos>",
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(legacy, indent=2) + "\n")
    assert Tokenizer.load(tmp_path) == Tokenizer("ab\n c")
    assert is_char_tokenizer_dir(tmp_path)
    legacy["alphabet"] = "abc"
    (tmp_path / "tokenizer.json").write_text(json.dumps(legacy))
    assert load_model(tmp_path)[1] == tokenizer


def test_a_plain_hugging_face_tokenizer_is_not_ours(tmp_path):
    Tokenizer("abc").to_hugging_face().save_pretrained(tmp_path)
    assert not is_char_tokenizer_dir(tmp_path)


def test_the_cpu_recipe_options_round_trip_through_hugging_face(tmp_path):
    """A model trained with the options E1's cpu preset adopts (an untied head, PyTorch's own
    initialisation, AdamW's beta2 = 0.999, plain batches) opens in AutoModelForCausalLM with
    the same logits, AutoTokenizer encodes its prompts as ours, and pipeline writes the answers
    our predictions give."""
    from tiny_run import TINY_MODEL, make_data, tiny_config
    from transformers import AutoModelForCausalLM

    from rewritelab.training.scratch import train

    data = make_data(tmp_path / "data")
    model_settings = {**TINY_MODEL, "tie_embeddings": False, "init": "pytorch"}
    config = tiny_config(model=model_settings, adam_beta2=0.999, weight_decay=0.0,
                         bucket_batches=1, eval_every=200)  # fmt: skip
    train(config, data, tmp_path / "run", progress=False)
    saved = tmp_path / "run" / "model"
    assert json.loads((saved / "config.json").read_text())["tie_word_embeddings"] is False
    ours, tokenizer = load_model(saved)
    assert not torch.equal(ours.lm_head.weight, ours.transformer.wte.weight)
    hf = AutoModelForCausalLM.from_pretrained(saved, use_safetensors=True).eval()
    hf_tokenizer = AutoTokenizer.from_pretrained(saved)
    generator = pipeline("text-generation", model=str(saved), device="cpu")
    records = list(itertools.islice(read_records(data / "seen_test.jsonl"), 6))
    correct = 0
    for record in records:
        x, y, z = record["x"], record["y"], record["z"]
        prompt = tokenizer.encode_prompt(x, y, z)
        assert hf_tokenizer(prompt_text(x, y, z))["input_ids"] == prompt
        with torch.no_grad():
            ids = torch.tensor([prompt])
            torch.testing.assert_close(hf(ids).logits, ours(ids), rtol=0, atol=1e-5)
        answer, _ = predict(tmp_path / "run", f"{x} -> {y}", z, device="cpu")
        correct += answer == record["output"]
        result = generator(prompt_text(x, y, z), do_sample=False, max_new_tokens=12)
        assert result[0]["generated_text"] == prompt_text(x, y, z) + answer
    assert correct >= 4  # trained: the answers compared are real ones


def test_the_saved_tokenizer_knows_the_context_and_warns_past_it(untrained_dir, caplog):
    from transformers.utils import logging as hf_logging

    hf = AutoTokenizer.from_pretrained(untrained_dir)
    assert hf.model_max_length == 64  # the model's context
    hf_logging.enable_propagation()
    try:
        with caplog.at_level("WARNING"):
            assert len(hf("a" * 100)["input_ids"]) == 100
            truncated = hf("a" * 100, truncation=True)["input_ids"]
    finally:
        hf_logging.disable_propagation()
    assert "longer than the specified maximum sequence length for this model" in caplog.text
    assert len(truncated) == 64


def test_a_prompt_past_the_context_is_one_line_in_our_cli(untrained_dir, capsys):
    from conftest import run_cli

    code, out, err = run_cli(
        ["predict", str(untrained_dir), "--rule", "a -> b", "--input", "abc" * 30], capsys
    )
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and "too long for the model's context (64)" in err
