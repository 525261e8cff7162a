"""Characters <-> token ids, and the prompt layout every model is trained and queried with.

One token per character of the dataset's alphabet, plus six special tokens. An example
`x -> y` on input `z` with answer `output` is laid out as

    <bos> x <to> y <in> z <out> | output <eos>
    `------------ prompt ------´   `- answer -´

The model learns to continue a prompt with the answer; by default only the answer tokens
(end token included) carry loss. The tokenizer is saved next to every model, so a model
directory holds everything needed to query it, in two forms: our own state
(`rewritelab_tokenizer.json`), and the same vocabulary as a Hugging Face fast tokenizer
(`tokenizer.json` + `tokenizer_config.json`) so that `AutoTokenizer.from_pretrained` and
`pipeline("text-generation")` open the directory. Models saved before that kept our state
in `tokenizer.json` (format /1); `Tokenizer.load` still reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rewritelab.errors import RewritelabError

FORMAT = "rewritelab-char-tokenizer/2"
FILENAME = "rewritelab_tokenizer.json"
# Format /1 kept our state under the name of Hugging Face's fast-tokenizer file.
LEGACY_FORMAT = "rewritelab-char-tokenizer/1"
LEGACY_FILENAME = "tokenizer.json"
PAD, BOS, TO, IN, OUT, EOS = "<pad>", "<bos>", "<to>", "<in>", "<out>", "<eos>"
SPECIAL_TOKENS = (PAD, BOS, TO, IN, OUT, EOS)
LOSS_MODES = ("answer", "sequence")
LAYOUT = "<bos> x <to> y <in> z <out> output <eos>"


@dataclass(frozen=True)
class Tokenizer:
    """Character-level vocabulary: the special tokens first (ids 0-5), then the alphabet."""

    alphabet: str
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise RewritelabError(
                f"tokenizer alphabet must be non-empty without repeats, got {self.alphabet!r}"
            )
        ids = {char: len(SPECIAL_TOKENS) + i for i, char in enumerate(self.alphabet)}
        object.__setattr__(self, "_ids", ids)

    pad_id = SPECIAL_TOKENS.index(PAD)
    bos_id = SPECIAL_TOKENS.index(BOS)
    to_id = SPECIAL_TOKENS.index(TO)
    in_id = SPECIAL_TOKENS.index(IN)
    out_id = SPECIAL_TOKENS.index(OUT)
    eos_id = SPECIAL_TOKENS.index(EOS)

    @property
    def vocab_size(self) -> int:
        return len(SPECIAL_TOKENS) + len(self.alphabet)

    def encode_word(self, word: str) -> list[int]:
        """Ids of the characters of `word`; a character outside the alphabet is refused."""
        try:
            return [self._ids[char] for char in word]
        except KeyError as error:
            raise RewritelabError(
                f"character {error.args[0]!r} of {word!r} is not in the tokenizer alphabet "
                f"{self.alphabet!r}"
            ) from None

    def encode_prompt(self, x: str, y: str, z: str) -> list[int]:
        """`<bos> x <to> y <in> z <out>`: what the model sees before it answers."""
        return [
            self.bos_id,
            *self.encode_word(x),
            self.to_id,
            *self.encode_word(y),
            self.in_id,
            *self.encode_word(z),
            self.out_id,
        ]

    def encode_answer(self, output: str) -> list[int]:
        """`output <eos>`: what the model must produce."""
        return [*self.encode_word(output), self.eos_id]

    def decode(self, ids: list[int]) -> str:
        """The characters of `ids` up to the first end token; special tokens are dropped."""
        chars = []
        for token in ids:
            if token == self.eos_id:
                break
            if token >= len(SPECIAL_TOKENS):
                chars.append(self.alphabet[token - len(SPECIAL_TOKENS)])
        return "".join(chars)

    def check_alphabet(self, alphabet: str, where: str) -> None:
        """Refuse a dataset alphabet with characters this tokenizer cannot encode."""
        missing = sorted(set(alphabet) - set(self.alphabet))
        if missing:
            raise RewritelabError(
                f"the model's tokenizer does not match {where}: characters "
                f"{''.join(missing)!r} are not in its alphabet {self.alphabet!r}"
            )

    def save(self, directory: str | Path) -> None:
        """Write our state (`rewritelab_tokenizer.json`: alphabet, special tokens, layout) and
        the equivalent Hugging Face fast tokenizer into `directory`."""
        self.to_hugging_face().save_pretrained(directory)
        state = {
            "format": FORMAT,
            "alphabet": self.alphabet,
            "special_tokens": list(SPECIAL_TOKENS),
            "layout": LAYOUT,
        }
        text = json.dumps(state, indent=2, ensure_ascii=False) + "\n"
        (Path(directory) / FILENAME).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        """Read the state written by `save` (or by format /1), with a clear error if absent or
        foreign."""
        path, expected_format = _state_file(Path(directory))
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise RewritelabError(f"cannot read tokenizer {path}: {error}") from None
        if not isinstance(state, dict) or state.get("format") != expected_format:
            raise RewritelabError(f"{path} is not a {expected_format} tokenizer")
        if state.get("special_tokens") != list(SPECIAL_TOKENS):
            raise RewritelabError(f"{path} has unexpected special tokens")
        return cls(state["alphabet"])

    def to_hugging_face(self):
        """The same ids as a `transformers` fast tokenizer: one token per character (newlines
        and spaces included), the special tokens matched whole in text ("<bos>" is id 1), no
        token added around an encoded text, decoding that joins characters without spaces.
        A character outside the alphabet is refused (there is no unknown token)."""
        from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as FastTokenizer
        from transformers import PreTrainedTokenizerFast

        vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *self.alphabet))}
        fast = FastTokenizer(models.WordLevel(vocab))
        # "." skips newlines in the regex engine; [\s\S] isolates every character.
        fast.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        fast.decoder = decoders.Fuse()
        fast.add_special_tokens(
            [AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=fast,
            bos_token=BOS,
            eos_token=EOS,
            pad_token=PAD,
            extra_special_tokens=[TO, IN, OUT],
            clean_up_tokenization_spaces=False,  # would turn "a ." into "a."
            padding_side="left",  # batched generation continues every prompt from its end
        )


def _state_file(directory: Path) -> tuple[Path, str]:
    """Where our state lies in `directory`, and the format it must have: the current file, or
    the format /1 `tokenizer.json` of a model saved before the Hugging Face tokenizer was."""
    path = directory / FILENAME
    if path.is_file() or not (directory / LEGACY_FILENAME).is_file():
        return path, FORMAT
    return directory / LEGACY_FILENAME, LEGACY_FORMAT


def holds_char_tokenizer(directory: str | Path) -> bool:
    """Whether `directory` holds a rewritelab character tokenizer (either format)."""
    try:
        Tokenizer.load(directory)
    except RewritelabError:
        return False
    return True


def loss_mask(
    prompt_lengths: np.ndarray, lengths: np.ndarray, width: int, mode: str = "answer"
) -> np.ndarray:
    """Which next-token targets carry loss in a right-padded batch, shape (B, width - 1).

    Entry [b, t] is about target token t+1 of row b (the logits at t predict it). "answer":
    the answer tokens only, end token included; "sequence": every token after `<bos>`. Padding
    never carries loss.
    """
    if mode not in LOSS_MODES:
        raise RewritelabError(f"loss mode must be one of {LOSS_MODES}, got {mode!r}")
    target_position = np.arange(1, width)[None, :]  # (1, width - 1)
    first = prompt_lengths[:, None] if mode == "answer" else 1  # (B, 1): first target with loss
    return (target_position >= first) & (target_position < lengths[:, None])
