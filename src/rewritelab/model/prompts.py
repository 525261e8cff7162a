"""Prompt templates for pretrained causal LMs, and the codecs that turn them into token ids.

A pretrained model brings its own tokenizer, so the from-scratch layout (one token per
character, special tokens between the fields) is not the only choice. Three templates:

    native    <bos> x <to> y <in> z <out> | output <eos>          (rewritelab tokenizers only)
    symbolic  <bos> "x -> y | z =>"        | " output" <eos>
    natural   <bos> "Replace the first occurrence of 'x' with 'y' in 'z'. Answer:"
                                           | " output" <eos>

`<bos>` is the model's begin token when it has one; `<eos>` its end token. The prompt and
the answer are tokenised separately and concatenated, so training always sees the same
answer ids the evaluator compares against. `auto` picks `native` for a model pretrained by
rewritelab (it holds our character tokenizer) and `symbolic` otherwise.

A codec hides which kind of tokenizer a model has: Hugging Face's (any `AutoTokenizer`) or
rewritelab's character tokenizer (models from `rewritelab pretrain` or `rewritelab train`).
"""

from __future__ import annotations

from pathlib import Path

from rewritelab.core.errors import RewritelabError
from rewritelab.model.batches import EncodedSplit
from rewritelab.model.tokenizer import Tokenizer, holds_char_tokenizer
from rewritelab.tasks.rewrite.records import kept_fields
from rewritelab.tasks.storage import SPLIT_FILES, read_records

TEMPLATES = ("auto", "native", "symbolic", "natural")
TEXT_TEMPLATES = {
    "symbolic": "{x} -> {y} | {z} =>",
    "natural": "Replace the first occurrence of '{x}' with '{y}' in '{z}'. Answer:",
}
ANSWER_TEMPLATE = " {output}"


class CharCodec:
    """rewritelab's character tokenizer (special tokens + an alphabet) seen as a codec."""

    kind = "rewritelab"

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.bos_id: int | None = tokenizer.bos_id
        self.eos_id, self.pad_id = tokenizer.eos_id, tokenizer.pad_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode_word(text)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def save(self, directory: str | Path) -> None:
        self.tokenizer.save(directory)


class HFCodec:
    """A Hugging Face tokenizer seen as a codec; one without a pad token pads with its end."""

    kind = "huggingface"

    def __init__(self, tokenizer, where: str):
        if tokenizer.eos_token_id is None:
            raise RewritelabError(
                f"the tokenizer of {where} has no end-of-sequence token: answers could not end"
            )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.bos_id = tokenizer.bos_token_id
        self.eos_id, self.pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def save(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(directory)


Codec = CharCodec | HFCodec


def is_char_tokenizer_dir(directory: Path) -> bool:
    """Whether `directory` holds rewritelab's character tokenizer (its models also carry a
    Hugging Face copy, but the native template needs ours)."""
    return holds_char_tokenizer(directory)


def resolve_template(template: str, codec: Codec) -> str:
    """The concrete template `template` means for `codec` (`auto` chosen by tokenizer kind)."""
    if template not in TEMPLATES:
        raise RewritelabError(f"template must be one of {TEMPLATES}, got {template!r}")
    if template == "auto":
        return "native" if isinstance(codec, CharCodec) else "symbolic"
    if template == "native" and not isinstance(codec, CharCodec):
        raise RewritelabError(
            "the native template needs a rewritelab character tokenizer; use symbolic or natural"
        )
    return template


def encode_example(
    codec: Codec, template: str, x: str, y: str, z: str, output: str
) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids ending with the end token) of one example."""
    if template == "native":
        tokenizer = codec.tokenizer
        return tokenizer.encode_prompt(x, y, z), tokenizer.encode_answer(output)
    bos = [] if codec.bos_id is None else [codec.bos_id]
    prompt = bos + codec.encode(TEXT_TEMPLATES[template].format(x=x, y=y, z=z))
    return prompt, codec.encode(ANSWER_TEMPLATE.format(output=output)) + [codec.eos_id]


def answer_text(codec: Codec, ids: list[int]) -> str:
    """The answer a model generated, as text: up to the end token, surrounding spaces dropped
    (the answer template puts a space before the word; words never hold whitespace)."""
    if codec.eos_id in ids:
        ids = ids[: ids.index(codec.eos_id)]
    return codec.decode(ids).strip()


def check_codec(codec: Codec, template: str, alphabet: str, where: str) -> None:
    """Refuse a tokenizer that cannot write the dataset's words back exactly.

    Every letter of the alphabet, alone and inside a filled template, must survive
    encode -> decode unchanged and never become the unknown token.
    """
    unknown = getattr(getattr(codec, "tokenizer", None), "unk_token_id", None)
    bad = []
    for letter in alphabet:
        try:
            prompt, answer = encode_example(codec, template, letter, letter, letter * 3, letter)
        except RewritelabError:
            bad.append(letter)
            continue
        if (unknown is not None and unknown in prompt + answer) or answer_text(
            codec, answer
        ) != letter:
            bad.append(letter)
    if bad:
        raise RewritelabError(
            f"the tokenizer of {where} cannot write the dataset's characters "
            f"{''.join(bad)!r} exactly (incompatible tokenizer)"
        )


def encode_records(codec: Codec, template: str, records: list[dict], where: str) -> EncodedSplit:
    """Records tokenised with `template`, as the same EncodedSplit from-scratch runs use."""
    pieces, prompt_lengths, kept = [], [], []
    try:
        for record in records:
            prompt, answer = encode_example(
                codec, template, record["x"], record["y"], record["z"], record["output"]
            )
            pieces.append(prompt + answer)
            prompt_lengths.append(len(prompt))
            kept.append(kept_fields(record))
    except (KeyError, TypeError) as error:
        raise RewritelabError(f"{where} is not a valid split: {error!r}") from None
    return EncodedSplit.from_pieces(pieces, prompt_lengths, kept, where)


def encode_dataset_split(codec: Codec, template: str, data_dir: str | Path, split: str):
    """Read one split (`train`, `seen_test`, `test`) of a dataset and tokenise it."""
    if split not in SPLIT_FILES:
        raise RewritelabError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
    path = Path(data_dir) / SPLIT_FILES[split]
    try:
        records = list(read_records(path))
    except (OSError, ValueError) as error:
        raise RewritelabError(f"cannot read {path}: {error}") from None
    return encode_records(codec, template, records, str(path))


def concatenation_is_canonical(codec: Codec, template: str, records: list[dict]) -> bool:
    """Whether tokenising prompt + answer as one text gives the ids of the two tokenised
    apart, for every record: then the gold answer ids are the ones a model would naturally
    write, and the teacher-forced fast path decides exact match like generation does."""
    if template == "native" or isinstance(codec, CharCodec):
        return True
    for record in records:
        prompt, answer = encode_example(
            codec, template, record["x"], record["y"], record["z"], record["output"]
        )
        bos = 0 if codec.bos_id is None else 1
        text = TEXT_TEMPLATES[template].format(x=record["x"], y=record["y"], z=record["z"])
        joint = codec.encode(text + ANSWER_TEMPLATE.format(output=record["output"]))
        if joint != prompt[bos:] + answer[:-1]:
            return False
    return True
