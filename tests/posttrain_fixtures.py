"""Shared set-up of the post-training tests: a tiny pretrained run and a small conversation set.

Book chapter 10 (``book/10_applications.md``). Everything is written under the folder given.
"""

import json

from minroots.backend import manual_seed
from minroots.data import TextDataset
from minroots.nn import TransformerModel
from minroots.training import Trainer

THINGS = ["rain", "fire", "the sea", "a king", "the moon", "bread", "a horse", "gold", "the sun",
          "a sword", "winter", "a rose", "the night", "music", "a friend", "the wind"]  # fmt: skip


def pretrained_base(folder, steps: int = 30, block_size: int = 64):
    """A one-layer character GPT trained ``steps`` steps on Shakespeare, saved in ``folder``."""
    manual_seed(0)
    data = TextDataset("shakespeare", block_size=block_size, use_cache=False)
    model = TransformerModel(vocab_size=data.vocab_size, block_size=block_size, n_layer=1,
                             n_head=2, n_embd=32)  # fmt: skip
    Trainer(model, data, max_steps=steps, batch_size=8, lr=3e-3, warmup=3, log_interval=0,
            eval_interval=0, out_dir=str(folder)).train()  # fmt: skip
    return folder


def conversation_file(path):
    """48 short question/answer pairs with a pattern to learn (Shakespeare's characters only)."""
    lines = []
    for k, thing in enumerate(THINGS * 3):
        question = ["What is %s?", "Do you like %s?", "Tell me of %s."][k % 3] % thing
        answer = ["It is %s, my lord.", "I love %s, my lord.", "Of %s I know little, my lord."][
            k % 3
        ] % thing
        lines.append(json.dumps({"prompt": question, "response": answer}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
