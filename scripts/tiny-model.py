#!/usr/bin/env python3
"""Writes a tiny model folder that real engines can serve without a model hub or a GPU.

    python scripts/tiny-model.py DIR

DIR gets a Llama `config.json` (2 layers, hidden 128, head_dim 32: the smallest shape vLLM's CPU
attention accepts; served with `--load-format dummy`, i.e. random weights) and a word-level
`tokenizer.json` with `tokenizer_config.json` (a chat template included), which is all Dynamo's
mocker reads. Every id of the 32,000 decodes to a word, so random weights still stream text.
Needs the `tokenizers` package (present in both engine venvs). Rewrites DIR's three files.
"""

import json
import pathlib
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

VOCAB = 32000
# The words the load generator's synthetic prompts are made of, so a prompt of n words is n tokens.
WORDS = """the of and to in is that for it as was with be by on not he this are or his from at which
but have an had they you were their one all we can her has there been if more when will would who so
no time out up people new first about may year like only over some work world day water city house
line state small long light place point hand part home case word game road book music plan test data
model power level value field form order group rate step area side page table number system""".split()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: tiny-model.py DIR")
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    for i in range(len(vocab), VOCAB):
        vocab[f"w{i}"] = i
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "model_max_length": 2048,
        "chat_template": "{% for m in messages %}{{ m['content'] }}\n{% endfor %}",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    llama = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    (out / "config.json").write_text(json.dumps(llama, indent=2))


if __name__ == "__main__":
    main()
