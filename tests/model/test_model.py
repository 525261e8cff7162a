"""The GPT: configuration checks, seeded init, Hugging Face round trip, safe loading."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config

from rewritelab.core.errors import RewritelabError
from rewritelab.core.hardware import pick_device
from rewritelab.model.files import hf_config, load_model, save_model
from rewritelab.model.gpt import ModelConfig, build_model
from rewritelab.model.tokenizer import Tokenizer

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
        ({"vocab_size": -1}, "vocab_size"),
        ({"vocab_size": 40.0}, "vocab_size"),
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
    assert first.vocab_size == tokenizer.vocab_size
    assert first.transformer.wpe.num_embeddings == SMALL.context


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
        expected = model(ids)
        torch.testing.assert_close(hf(ids).logits, expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours(ids), expected, rtol=0, atol=0)
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
    with pytest.raises(RewritelabError, match="does not hold"):
        load_model(tmp_path)


def test_padded_vocabulary_saves_and_opens_in_transformers(tmp_path):
    """`vocab_size` adds rows no text uses to the embedding and the head: they take part in the
    softmax, the directory says so in its config, and transformers and our loader give the
    same logits over every row."""
    tokenizer = Tokenizer("abc")  # 9 ids
    padded = ModelConfig(layers=2, heads=2, width=32, context=24, vocab_size=16)
    model = build_model(padded, tokenizer, seed=0).eval()
    assert model.transformer.wte.num_embeddings == model.lm_head.out_features == 16
    save_model(model, tokenizer, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["vocab_size"] == 16
    ids = torch.tensor([tokenizer.encode_prompt("ab", "c", "cabab")])
    hf = AutoModelForCausalLM.from_pretrained(tmp_path, use_safetensors=True).eval()
    ours, _ = load_model(tmp_path)
    with torch.no_grad():
        expected = model(ids)
        assert expected.shape[-1] == 16
        torch.testing.assert_close(hf(ids).logits, expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours(ids), expected, rtol=0, atol=0)
    unpadded = build_model(SMALL, tokenizer, seed=0)
    assert unpadded.vocab_size == 9  # 0 = the tokenizer's own size


def test_vocab_size_below_the_tokenizers_is_refused():
    with pytest.raises(RewritelabError, match=r"model.vocab_size \(8\) is smaller .* \(9\)"):
        build_model(ModelConfig(layers=1, heads=1, width=8, context=8, vocab_size=8),
                    Tokenizer("abc"), seed=0)  # fmt: skip


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


@pytest.fixture
def saved(tmp_path):
    tokenizer = Tokenizer("abc")
    model = build_model(SMALL, tokenizer, seed=0)
    save_model(model, tokenizer, tmp_path)
    return tmp_path


def test_saving_the_same_weights_again_writes_the_same_bytes(saved, tmp_path):
    tokenizer = Tokenizer("abc")
    model = build_model(SMALL, tokenizer, seed=0)
    first = (saved / "model.safetensors").read_bytes()
    for attempt in range(8):  # safetensors alone wrote its metadata in a random key order
        save_model(model, tokenizer, tmp_path / f"again{attempt}")
        assert (tmp_path / f"again{attempt}" / "model.safetensors").read_bytes() == first
    size = int.from_bytes(first[:8], "little")
    metadata = json.loads(first[8 : 8 + size])["__metadata__"]
    assert list(metadata) == sorted(metadata) == ["format", "tokenizer_sha256", "weights_sha256"]
    assert torch.equal(load_model(saved)[0].lm_head.weight, model.lm_head.weight)


def test_flipped_weight_bytes_are_refused(saved):
    data = bytearray((saved / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF  # inside the last tensor's bytes, after the header
    (saved / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(RewritelabError, match="changed after it was saved"):
        load_model(saved)


def test_a_reversed_tokenizer_alphabet_is_refused(saved):
    Tokenizer("cba").save(saved)
    with pytest.raises(RewritelabError, match="not the one the model was saved with"):
        load_model(saved)


def test_an_edited_layer_count_is_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config["n_layer"] = 3
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(RewritelabError, match="missing"):
        load_model(saved)


def test_cached_decoding_matches_full_forward():
    model = build_model(SMALL, Tokenizer("abc"), seed=3).eval()
    ids = torch.randint(0, 9, (3, 12))
    with torch.no_grad():
        full = model(ids)
        logits, cache = model.step_logits(ids[:, :5], None)
        torch.testing.assert_close(logits, full[:, 4], rtol=0, atol=1e-5)
        for t in range(5, 12):
            logits, cache = model.step_logits(ids[:, t : t + 1], cache)
            torch.testing.assert_close(logits, full[:, t], rtol=0, atol=1e-5)


def _attention_ops_and_loss(loss_of) -> tuple[set[str], torch.Tensor]:
    """The attention ops a forward and backward pass of `loss_of()` runs, and its loss."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as trace:
        loss = loss_of()
        loss.backward()
    ops = {e.key for e in trace.key_averages() if "attention" in e.key or "bmm" in e.key}
    return ops, loss.detach()


def test_bf16_precision_on_a_cpu_avoids_the_flash_kernel_and_stays_near_fp32():
    """In bf16 the CPU flash-attention kernel runs 2-9x slower than in fp32 (measured), so the
    loop's bf16 precision sends attention to SDPA's math kernel, for our GPT and for Hugging
    Face's alike; fp32 keeps the flash kernel, and the bf16 loss is within rounding of fp32's."""
    from rewritelab.core.hardware import precision

    tokenizer = Tokenizer("abc")
    ours = build_model(SMALL, tokenizer, seed=0)
    hf = AutoModelForCausalLM.from_config(
        GPT2Config(**hf_config(SMALL, tokenizer.vocab_size, 1, 5)), attn_implementation="sdpa"
    )
    ids = torch.randint(6, tokenizer.vocab_size, (4, 12))
    cpu = torch.device("cpu")
    for name, loss_of in {
        "ours": lambda: ours.loss(ids, ids[:, 1:]),
        "hf": lambda: hf(input_ids=ids, labels=ids).loss,
    }.items():
        with precision(cpu, None):  # fp32: as it is, with the flash kernel
            fp32_ops, fp32 = _attention_ops_and_loss(loss_of)
        assert [op for op in fp32_ops if "flash" in op], (name, fp32_ops)
        with precision(cpu, torch.bfloat16):
            bf16_ops, bf16 = _attention_ops_and_loss(loss_of)
        assert bf16_ops and not [op for op in bf16_ops if "flash" in op], (name, bf16_ops)
        assert bf16.dtype == torch.float32  # the loss itself is reduced in fp32
        assert bf16.item() != fp32.item()  # bf16 did compute
        assert abs(bf16.item() - fp32.item()) < 0.05 * fp32.item(), name


def test_pytorch_init_and_untied_head_are_seeded_and_refused_when_misspelt():
    tokenizer = Tokenizer("abc")
    config = ModelConfig(layers=2, heads=2, width=32, context=24, tie_embeddings=False,
                         init="pytorch")  # fmt: skip
    first, again = (build_model(config, tokenizer, 5) for _ in range(2))
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    # PyTorch's own draws: embeddings N(0, 1), not GPT-2's N(0, 0.02)
    assert 0.8 < first.transformer.wte.weight.std().item() < 1.2
    assert first.lm_head.weight is not first.transformer.wte.weight
    assert build_model(SMALL, tokenizer, 5).transformer.wte.weight.std().item() < 0.03
    with pytest.raises(RewritelabError, match="model.init must be one of gpt2, pytorch"):
        ModelConfig(init="xavier").validate()
    with pytest.raises(RewritelabError, match="model.tie_embeddings must be true or false"):
        ModelConfig(tie_embeddings="no").validate()
