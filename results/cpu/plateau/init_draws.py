"""E1 path, I=256: our GPT's own init vs HF GPT-2's init, the same init seed for both."""
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from rewritelab.model.files import _load_hf_state
from rewritelab.model.gpt import GPT
from rewritelab.training.loop import train_run
from rewritelab.training.scratch import ScratchTrainee
from rewritelab.training.scratch_config import train_config_from_dict

base, data, seed, kind, initseed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(1)
hfconf = AutoConfig.from_pretrained(base)
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(initseed)
    if kind == "hf":
        hf = AutoModelForCausalLM.from_config(hfconf)
        state = {k: v.detach().clone() for k, v in hf.state_dict().items() if not k.endswith(".attn.bias") and not k.endswith("masked_bias") and k != "lm_head.weight"}
cfg = train_config_from_dict(dict(seed=seed, max_steps=1875, batch_size=64, learning_rate=5e-3, warmup_steps=30,
    weight_decay=0.0, eval_every=625, eval_examples=500, bf16=False, device="cpu", threads=1,
    model=dict(layers=3, heads=4, width=64, context=24)))
def make(device):
    t = ScratchTrainee(cfg, Path(data), device)
    if kind == "hf":
        _load_hf_state(t.model, state, "hf-init")
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(initseed)
            t.model = GPT(cfg.model, t.tokenizer.vocab_size, t.tokenizer.bos_id, t.tokenizer.eos_id)
    return t
print(train_run(make, cfg, out, progress=False))
