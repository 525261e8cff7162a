"""The GPT: configuration checks, seeded init, Hugging Face round trip, safe loading."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from rewritelab.errors import RewritelabError
from rewritelab.model import ModelConfig, build_model, load_model, pick_device, save_model
from rewritelab.tokenizer import Tokenizer

SMALL = ModelConfig(layers=2, heads=2, width=32, context=24)


def test_defaults_are_the_papers():
    config = ModelConfig()
    assert (config.layers, config.heads, config.width) == (6, 4, 256)


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"width": 30, "heads": 4}, "divisible"),
        ({"layers": 0}, "layers"),
        ({"context": 2.5}, "context"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_model_configs_are_refused(changes, problem):
    with pytest.raises(RewritelabError, match=problem):
        ModelConfig(**changes).validate()


def test_same_seed_same_weights_other_seed_other_weights():
    tokenizer = Tokenizer("abc")
    first, again, other = (build_model(SMALL, tokenizer, seed) for seed in (5, 5, 6))
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not all(
        torch.equal(a, c) for a, c in zip(first.parameters(), other.parameters(), strict=True)
    )
    assert first.config.vocab_size == tokenizer.vocab_size
    assert first.config.n_positions == SMALL.context


def test_saved_model_opens_in_transformers_with_identical_logits(tmp_path):
    tokenizer = Tokenizer("abc")
    model = build_model(SMALL, tokenizer, seed=0).eval()
    save_model(model, tokenizer, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin"))
    hf = AutoModelForCausalLM.from_pretrained(tmp_path, use_safetensors=True).eval()
    ours, ours_tokenizer = load_model(tmp_path)
    ids = torch.tensor([tokenizer.encode_prompt("ab", "c", "cabab")])
    with torch.no_grad():
        expected = model(ids).logits
        torch.testing.assert_close(hf(ids).logits, expected, rtol=0, atol=0)
        torch.testing.assert_close(ours(ids).logits, expected, rtol=0, atol=0)
    assert ours_tokenizer == tokenizer


def test_loading_refuses_missing_or_corrupt_weights(tmp_path):
    with pytest.raises(RewritelabError, match="no saved model"):
        load_model(tmp_path)
    tokenizer = Tokenizer("abc")
    save_model(build_model(SMALL, tokenizer, seed=0), tokenizer, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage, not safetensors")
    with pytest.raises(RewritelabError, match="cannot load"):
        load_model(tmp_path)


def test_loading_refuses_a_tokenizer_of_another_vocabulary(tmp_path):
    tokenizer = Tokenizer("abc")
    save_model(build_model(SMALL, tokenizer, seed=0), tokenizer, tmp_path)
    Tokenizer("abcd").save(tmp_path)
    with pytest.raises(RewritelabError, match="does not match"):
        load_model(tmp_path)


def test_device_choice():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected
    with pytest.raises(RewritelabError, match="unknown device"):
        pick_device("abacus")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_request_without_cuda_is_refused():
    with pytest.raises(RewritelabError, match="CUDA is not available"):
        pick_device("cuda")
