"""Characters <-> token ids, and the prompt layouts every model is trained and queried with.

One token per character of the dataset's alphabet, plus special tokens. Two layouts, one per
dataset task; a tokenizer knows its `layout` and saves it with every model.

`rule` (the single-rule task; six special tokens, ids 0-5, then the alphabet). An example
`x -> y` on input `z` with answer `output` is laid out as

    <bos> x <to> y <in> z <out> | output <eos>
    `------------ prompt ------´   `- answer -´

`markov` (the algorithm task; the same six specials with the same ids, then `<to.>`, `<sep>`,
`<then>` (ids 6-8), then the alphabet, markers included). An algorithm's ordered rules come
first, a terminal rule written with the arrow `<to.>`, rules separated by `<sep>`; then the
input and the answer:

    <bos> x1 <to> y1 <sep> x2 <to.> y2 <sep> ... <in> input <out> | answer <eos>

The answer depends on the training target: `step` the word after one step, `final` the word
the algorithm halts on, `trace` every word after a step, `w1 <then> w2 <then> ... <then> final`
(the input alone when no rule applies).

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

from rewritelab.core.errors import RewritelabError

FORMAT = "rewritelab-char-tokenizer/2"
FILENAME = "rewritelab_tokenizer.json"
# Format /1 kept our state under the name of Hugging Face's fast-tokenizer file.
LEGACY_FORMAT = "rewritelab-char-tokenizer/1"
LEGACY_FILENAME = "tokenizer.json"
PAD, BOS, TO, IN, OUT, EOS = "<pad>", "<bos>", "<to>", "<in>", "<out>", "<eos>"
SPECIAL_TOKENS = (PAD, BOS, TO, IN, OUT, EOS)
TERMINAL_TO, SEP, THEN = "<to.>", "<sep>", "<then>"
MARKOV_TOKENS = (TERMINAL_TO, SEP, THEN)  # appended after SPECIAL_TOKENS by the markov layout
LOSS_MODES = ("answer", "sequence")
UNUSED_ID = "\ufffd"  # how decode writes an id past the vocabulary (see `decode`)
LAYOUT = "<bos> x <to> y <in> z <out> output <eos>"
MARKOV_LAYOUT = (
    "<bos> x1 <to> y1 <sep> x2 <to.> y2 <sep> ... <in> input <out> answer <eos>; "
    "trace answer: w1 <then> w2 <then> ... <then> final"
)
LAYOUTS = {"rule": LAYOUT, "markov": MARKOV_LAYOUT}  # layout name -> the text saved with it
LAYOUT_SPECIALS = {"rule": SPECIAL_TOKENS, "markov": SPECIAL_TOKENS + MARKOV_TOKENS}


@dataclass(frozen=True)
class Tokenizer:
    """Character-level vocabulary: the layout's special tokens first (ids 0-5, and 6-8 for the
    markov layout), then the alphabet."""

    alphabet: str
    layout: str = "rule"
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise RewritelabError(
                f"tokenizer alphabet must be non-empty without repeats, got {self.alphabet!r}"
            )
        if UNUSED_ID in self.alphabet:
            raise RewritelabError(
                "tokenizer alphabet must not hold U+FFFD: it stands for ids past the vocabulary"
            )
        if self.layout not in LAYOUTS:
            raise RewritelabError(
                f"tokenizer layout must be one of {tuple(LAYOUTS)}, got {self.layout!r}"
            )
        ids = {char: len(self.specials) + i for i, char in enumerate(self.alphabet)}
        object.__setattr__(self, "_ids", ids)

    pad_id = SPECIAL_TOKENS.index(PAD)
    bos_id = SPECIAL_TOKENS.index(BOS)
    to_id = SPECIAL_TOKENS.index(TO)
    in_id = SPECIAL_TOKENS.index(IN)
    out_id = SPECIAL_TOKENS.index(OUT)
    eos_id = SPECIAL_TOKENS.index(EOS)
    # markov layout only:
    terminal_to_id = len(SPECIAL_TOKENS) + MARKOV_TOKENS.index(TERMINAL_TO)
    sep_id = len(SPECIAL_TOKENS) + MARKOV_TOKENS.index(SEP)
    then_id = len(SPECIAL_TOKENS) + MARKOV_TOKENS.index(THEN)

    @property
    def specials(self) -> tuple[str, ...]:
        """The special tokens of this tokenizer's layout, in id order."""
        return LAYOUT_SPECIALS[self.layout]

    @property
    def vocab_size(self) -> int:
        return len(self.specials) + len(self.alphabet)

    def identity(self) -> str:
        """What decides the ids: the alphabet in order (and the layout when it is not `rule`,
        so that single-rule models keep the digest they were saved with)."""
        return self.alphabet if self.layout == "rule" else f"{self.layout}\0{self.alphabet}"

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

    def encode_algorithm_prompt(self, rules: list[dict], word: str) -> list[int]:
        """`<bos> x1 <to> y1 <sep> x2 <to.> y2 ... <in> word <out>` (markov layout): the
        ordered rules (`{x, y, terminal}` each, as in an algorithm record), then the input."""
        self._require_markov()
        ids = [self.bos_id]
        for index, rule in enumerate(rules):
            if index:
                ids.append(self.sep_id)
            arrow = self.terminal_to_id if rule["terminal"] else self.to_id
            ids += [*self.encode_word(rule["x"]), arrow, *self.encode_word(rule["y"])]
        return [*ids, self.in_id, *self.encode_word(word), self.out_id]

    def encode_trace(self, words: list[str]) -> list[int]:
        """`w1 <then> w2 <then> ... <then> wn <eos>` (markov layout): a trace answer."""
        self._require_markov()
        ids = []
        for index, word in enumerate(words):
            ids += ([self.then_id] if index else []) + self.encode_word(word)
        return [*ids, self.eos_id]

    def _require_markov(self) -> None:
        if self.layout != "markov":
            raise RewritelabError(
                f"this tokenizer has the {self.layout!r} layout: algorithms need 'markov'"
            )

    def decode(self, ids: list[int]) -> str:
        """The characters of `ids` up to the first end token; special tokens are dropped, except
        `<then>` (markov layout), written as a space between the words of a trace. An id past
        the vocabulary (a padded model's unused row) is written as U+FFFD, which no alphabet may
        hold, so such an answer is never right."""
        chars = []
        for token in ids:
            if token == self.eos_id:
                break
            if token >= self.vocab_size:
                chars.append(UNUSED_ID)
            elif token >= len(self.specials):
                chars.append(self.alphabet[token - len(self.specials)])
            elif self.layout == "markov" and token == self.then_id:
                chars.append(" ")
        return "".join(chars)

    def check_alphabet(self, alphabet: str, where: str) -> None:
        """Refuse a dataset alphabet with characters this tokenizer cannot encode."""
        missing = sorted(set(alphabet) - set(self.alphabet))
        if missing:
            raise RewritelabError(
                f"the model's tokenizer does not match {where}: characters "
                f"{''.join(missing)!r} are not in its alphabet {self.alphabet!r}"
            )

    def save(self, directory: str | Path, model_max_length: int | None = None) -> None:
        """Write our state (`rewritelab_tokenizer.json`: alphabet, special tokens, the layout
        as text (`LAYOUTS`), and for a layout other than `rule` its name under `layout_name`)
        and the equivalent Hugging Face fast tokenizer into `directory`, which knows the
        model's context as `model_max_length` when given. The state of a `rule` tokenizer is
        what it was before layouts had names."""
        self.to_hugging_face(model_max_length).save_pretrained(directory)
        state = {
            "format": FORMAT,
            "alphabet": self.alphabet,
            "special_tokens": list(self.specials),
            "layout": LAYOUTS[self.layout],
        }
        if self.layout != "rule":
            state["layout_name"] = self.layout
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
        layout = state.get("layout_name", "rule")  # files without a name have the rule layout
        if layout not in LAYOUTS:
            raise RewritelabError(f"{path} has an unknown layout {layout!r}")
        if state.get("special_tokens") != list(LAYOUT_SPECIALS[layout]):
            raise RewritelabError(f"{path} has unexpected special tokens")
        return cls(state["alphabet"], layout)

    def to_hugging_face(self, model_max_length: int | None = None):
        """The same ids as a `transformers` fast tokenizer: one token per character (newlines
        and spaces included), the special tokens matched whole in text ("<bos>" is id 1), no
        token added around an encoded text, decoding that joins characters without spaces.
        A character outside the alphabet is refused (there is no unknown token). With
        `model_max_length` (the model's context), a longer text is warned about on encoding
        and truncated where truncation is asked for."""
        from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as FastTokenizer
        from transformers import PreTrainedTokenizerFast

        vocab = {token: i for i, token in enumerate((*self.specials, *self.alphabet))}
        fast = FastTokenizer(models.WordLevel(vocab))
        # "." skips newlines in the regex engine; [\s\S] isolates every character.
        fast.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        fast.decoder = decoders.Fuse()
        fast.add_special_tokens(
            [AddedToken(token, special=True, normalized=False) for token in self.specials]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=fast,
            bos_token=BOS,
            eos_token=EOS,
            pad_token=PAD,
            extra_special_tokens=[TO, IN, OUT, *self.specials[len(SPECIAL_TOKENS) :]],
            clean_up_tokenization_spaces=False,  # would turn "a ." into "a."
            padding_side="left",  # batched generation continues every prompt from its end
            **({} if model_max_length is None else {"model_max_length": model_max_length}),
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


IGNORE = -100  # the target id of a token that carries no loss (PyTorch's ignore_index)


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
