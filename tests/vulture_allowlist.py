"""Names vulture cannot see used: called by torch, transformers, sqlite3, signal or `with`, or
public API that only users and tests call."""

# ruff: noqa
_.forward  # torch.nn.Module calls forward
_.pad_token  # read by transformers' tokenizers
_.pre_tokenizer  # read by the tokenizers library
_.decoder  # read by the tokenizers library
_.isolation_level  # read by sqlite3
exc  # context-manager and signal-handler signatures
_.display  # tqdm calls display(msg=..., pos=...) on its bars
msg
pos
frame
signum
features  # public: load_dataset("json", ..., features=dataset_card.features(directory))
