"""E1 path (our GPT), I=256: the dataset's own tokenizer vs the same with extra, never-used characters."""
import string
import sys

import rewritelab.training.scratch as T
from rewritelab.model.encoding import dataset_alphabet
from rewritelab.model.tokenizer import Tokenizer

data, seed, extra, context, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pool = [c for c in string.printable if c not in string.ascii_lowercase and not c.isspace()] + [chr(0x100 + i) for i in range(200)]
def tok(manifest):
    a = dataset_alphabet(manifest)
    return Tokenizer(a + "".join(pool[:extra]))
T.dataset_tokenizer = tok
cfg = T.train_config_from_dict(dict(seed=seed, max_steps=1875, batch_size=64, learning_rate=5e-3, warmup_steps=30,
    weight_decay=0.0, eval_every=625, eval_examples=500, bf16=False, device="cpu", threads=1,
    model=dict(layers=3, heads=4, width=64, context=context)))
print(T.train(cfg, data, out, progress=False))
