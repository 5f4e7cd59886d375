#!/usr/bin/env python3
"""Writes a random Qwen3 checkpoint for CPU benchmarks (no PyTorch, no numpy: the standard
library only, so it runs on any machine the benchmarks run on).

The default shape is the ~58M-parameter model the benchmarks name: hidden 512, 8 layers,
8 query heads and 4 KV heads of 64, MLP 1536, vocabulary 32000, fp32, untied embeddings.
With --dms_window W > 0 the config carries DMS keys (borrowed decisions, docs/dms.md), so the
checkpoint's default cache policy is `dms` and a run can pick `dense` with --cache_policy.

The weights are N(0, 0.02) (norms 1): the model speaks nonsense, at the speed and memory of
a real one of its shape. No tokenizer is written: benchmarks send token ids.

    tools/make_bench_model.py OUT_DIR [--dms_window 512] [--seed 1]
"""

import argparse
import json
import math
import os
import random
import struct
import sys
from array import array


def shapes(c):
    h, d = c["hidden_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    inter, vocab = c["intermediate_size"], c["vocab_size"]
    out = [("model.embed_tokens.weight", [vocab, h])]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", [h]),
            (p + "self_attn.q_proj.weight", [q, h]),
            (p + "self_attn.k_proj.weight", [kv, h]),
            (p + "self_attn.v_proj.weight", [kv, h]),
            (p + "self_attn.o_proj.weight", [h, q]),
            (p + "self_attn.q_norm.weight", [d]),
            (p + "self_attn.k_norm.weight", [d]),
            (p + "post_attention_layernorm.weight", [h]),
            (p + "mlp.gate_proj.weight", [inter, h]),
            (p + "mlp.up_proj.weight", [inter, h]),
            (p + "mlp.down_proj.weight", [h, inter]),
        ]
    out += [("model.norm.weight", [h]), ("lm_head.weight", [vocab, h])]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--dms_window", type=int, default=512)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max_position_embeddings", type=int, default=8192)
    a = ap.parse_args()
    config = {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "attention_bias": False,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 512,
        "intermediate_size": 1536,
        "max_position_embeddings": a.max_position_embeddings,
        "num_attention_heads": 8,
        "num_hidden_layers": 8,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "vocab_size": 32000,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if a.dms_window > 0:
        config.update({"dms_window_size": a.dms_window, "dms_alpha_scale": 100.0,
                       "dms_initial_alpha_offset": 5.0, "dms_separate_alpha": False,
                       "dms_alpha_per": "head", "dms_cr": 8})
    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(a.out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=2)

    # One block of N(0, 0.02) values; each matrix reads it from a random offset (drawing 58M
    # Gaussians one by one in Python would take minutes for no benefit to a benchmark).
    rng = random.Random(a.seed)
    block = array("f", (rng.gauss(0.0, 0.02) for _ in range(1 << 20)))
    tensors = shapes(config)
    header, offset = {}, 0
    for name, shape in tensors:
        size = 4 * math.prod(shape)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    params = 0
    with open(os.path.join(a.out_dir, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape in tensors:
            n = math.prod(shape)
            params += n
            if len(shape) == 1:  # norms
                f.write(array("f", [1.0]) * n)
                continue
            start = rng.randrange(len(block))
            out = array("f")
            while len(out) < n:
                take = min(n - len(out), len(block) - start)
                out.extend(block[start:start + take])
                start = 0
            f.write(out.tobytes())
    print(f"{a.out_dir}: {params / 1e6:.1f}M parameters, DMS window {a.dms_window}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
