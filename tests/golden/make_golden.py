#!/usr/bin/env python3
"""Generate the golden files the C++ golden tests compare against.

Pinned versions (asserted below; golden values are only meaningful for these):
    torch==2.9.1  transformers==4.57.3   (plus safetensors, numpy)

Run from the repository root:
    /opt/golden-venv/bin/python tests/golden/make_golden.py

For each tiny random model in MODELS this writes tests/golden/models/<name>/:
    config.json                      HF config (save_pretrained)
    model.safetensors                fp32 weights (save_pretrained, safe_serialization)
      or model-0000k-of-0000n.safetensors + model.safetensors.index.json (sharded)
    golden.json                      prompts, prefill logits, greedy tokens, decode logits

Everything is computed in float32 on CPU with eager attention and is deterministic
(fixed seeds).  The outputs are committed; rerun only when they must change.
See tests/golden/README.md for the golden.json schema.
"""

import json
import math
import os
import shutil
import sys

PINNED_TORCH = "2.9.1"
PINNED_TRANSFORMERS = "4.57.3"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

assert torch.__version__.split("+")[0] == PINNED_TORCH, (
    f"torch {torch.__version__} != pinned {PINNED_TORCH}")
assert transformers.__version__ == PINNED_TRANSFORMERS, (
    f"transformers {transformers.__version__} != pinned {PINNED_TRANSFORMERS}")

from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_ROOT = os.path.join(HERE, "models")

# ---------------------------------------------------------------------------
# Model definitions
# ---------------------------------------------------------------------------

COMMON = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,  # GQA: 2 query heads per KV head
    rms_norm_eps=1e-6,
    max_position_embeddings=512,
    hidden_act="silu",
    attention_dropout=0.0,
    bos_token_id=None,
    eos_token_id=None,
    pad_token_id=None,
)

# Weight init (NOT HF's default init): matrices ~ N(0, MATRIX_STD^2), RMSNorm weights
# 1 + N(0, NORM_STD^2), biases N(0, BIAS_STD^2).
MATRIX_STD = 0.15
NORM_STD = 0.1
BIAS_STD = 0.1

# Each model has its own fixed seed.  If a seed ever gives a greedy step whose top-1/top-2
# logit margin is <= MIN_MARGIN, change the seed here and note it in the comment.
MODELS = [
    dict(
        name="llama",
        seed=1001,
        cls=LlamaForCausalLM,
        config=lambda: LlamaConfig(
            **COMMON,
            head_dim=16,
            rope_theta=10000.0,
            rope_scaling=None,
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
        ),
        shard=None,
    ),
    dict(
        name="llama3",
        seed=1002,
        cls=LlamaForCausalLM,
        config=lambda: LlamaConfig(
            **COMMON,
            head_dim=16,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                # 64, not 32: with head_dim 16 and theta 5e5 the wavelengths 2*pi/inv_freq are
                # 6.3, 32.4, 167, ...  With 64 they cover all three llama3 regimes: < 64/4 kept,
                # in [64/4, 64/1] smoothed (index 1, smooth 0.325), > 64 divided by factor.
                # (With 32 no wavelength is in [8, 32]: the smoothing would go untested.)
                "original_max_position_embeddings": 64,
            },
            tie_word_embeddings=False,
            attention_bias=False,
            mlp_bias=False,
        ),
        # ~427 kB of fp32 weights -> 3 shards + model.safetensors.index.json
        shard="200kB",
    ),
    dict(
        name="qwen2",
        seed=1003,
        cls=Qwen2ForCausalLM,
        config=lambda: Qwen2Config(
            **COMMON,
            rope_theta=1000000.0,
            rope_scaling=None,
            tie_word_embeddings=True,
            use_sliding_window=False,
        ),
        shard=None,
    ),
    dict(
        name="qwen3",
        seed=1004,
        cls=Qwen3ForCausalLM,
        config=lambda: Qwen3Config(
            **COMMON,
            head_dim=32,  # != hidden_size / num_attention_heads (= 16), on purpose
            rope_theta=1000000.0,
            rope_scaling=None,
            tie_word_embeddings=False,
            attention_bias=False,
            use_sliding_window=False,
        ),
        shard=None,
    ),
    dict(
        name="qwen3_yarn",
        seed=1005,
        cls=Qwen3ForCausalLM,
        config=lambda: Qwen3Config(
            **COMMON,
            head_dim=16,
            rope_theta=1000000.0,
            rope_scaling={
                "rope_type": "yarn",
                "factor": 4.0,
                # 128, not 16: with head_dim 16 and theta 1e6, beta_fast=32/beta_slow=1 give the
                # correction range [floor(-0.26)->0, ceil(1.75)=2], so inv_freq index 0 is kept,
                # index 1 is a 50/50 blend and indices >= 2 are divided by factor: all three
                # regimes.  (With 16 the range is [0, 1]: no blended index.)  Also
                # 512 / 128 == factor, so transformers' "implicit factor" check stays quiet.
                # HF's YaRN is static: inv_freq and attention_factor apply at every position.
                "original_max_position_embeddings": 128,
            },
            tie_word_embeddings=True,
            attention_bias=False,
            use_sliding_window=False,
        ),
        shard=None,
    ),
]

PROMPT_LENGTHS = (5, 11, 23)
PROMPT_SEED = 4242  # prompts: per model, generator seeded with PROMPT_SEED + model seed
NUM_GREEDY = 20
MIN_MARGIN = 1e-3  # top-1 minus top-2 logit at every greedy step
RECOMPUTE_TOL = 1e-5  # incremental decode vs full recompute, max abs diff
_max_recompute_diff = [0.0]  # for the summary


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def randomize_(model, seed):
    """Overwrite every parameter deterministically (tied weights are one parameter)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():  # deduplicates tied parameters
        if name.endswith("norm.weight"):  # input/post_attention/final/q_norm/k_norm
            val = 1.0 + NORM_STD * torch.randn(p.shape, generator=g, dtype=torch.float32)
        elif name.endswith(".bias"):
            val = BIAS_STD * torch.randn(p.shape, generator=g, dtype=torch.float32)
        elif p.dim() == 2:
            val = MATRIX_STD * torch.randn(p.shape, generator=g, dtype=torch.float32)
        else:
            raise AssertionError(f"unexpected parameter {name} {tuple(p.shape)}")
        p.copy_(val)
    # Buffers (rotary inv_freq) are derived from the config, not randomized.


def top2_margin(logits_row):
    v = torch.topk(logits_row, 2).values
    return float(v[0] - v[1])


def f32_short(x):
    """A double whose shortest repr has <= 9 significant digits and which rounds back
    to exactly the same float32."""
    y = float("%.9g" % x)
    assert np.float32(y) == np.float32(x)
    return y


def rows_to_json(t):
    """2-D float32 tensor -> list of lists of python floats (exact float32 round-trip)."""
    assert t.dtype == torch.float32 and t.dim() == 2
    assert torch.isfinite(t).all()
    return [[f32_short(x) for x in row] for row in t.tolist()]


def dump_golden(obj, path):
    """JSON with one logits row per line (readable diffs, modest size)."""
    def row(r):
        return "[" + ",".join(repr(x) for x in r) + "]"

    def rows(rs, ind):
        return "[\n" + ",\n".join(ind + row(r) for r in rs) + "\n" + ind[:-2] + "]"

    lines = ["{"]
    lines.append(f'  "model": {json.dumps(obj["model"])},')
    lines.append(f'  "architecture": {json.dumps(obj["architecture"])},')
    lines.append(f'  "versions": {json.dumps(obj["versions"])},')
    lines.append(f'  "num_greedy": {obj["num_greedy"]},')
    lines.append('  "cases": [')
    case_strs = []
    for c in obj["cases"]:
        s = "    {\n"
        s += f'      "prompt": {json.dumps(c["prompt"])},\n'
        s += f'      "greedy_tokens": {json.dumps(c["greedy_tokens"])},\n'
        s += f'      "min_margin": {c["min_margin"]!r},\n'
        s += f'      "prefill_logits": {rows(c["prefill_logits"], "        ")},\n'
        s += f'      "decode_logits": {rows(c["decode_logits"], "        ")}\n'
        s += "    }"
        case_strs.append(s)
    lines.append(",\n".join(case_strs))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == obj, "golden.json writer is not faithful"
    with open(path, "w") as f:
        f.write(text)


def run_case(model, prompt):
    """Prefill + NUM_GREEDY incremental greedy steps with the HF KV cache."""
    ids = torch.tensor([prompt], dtype=torch.long)
    out = model(input_ids=ids, use_cache=True)
    prefill = out.logits[0].float().clone()  # [len(prompt), vocab]
    assert prefill.shape == (len(prompt), model.config.vocab_size)
    past = out.past_key_values

    margins = [top2_margin(prefill[-1])]
    tokens = [int(torch.argmax(prefill[-1]))]
    decode = []
    for i in range(NUM_GREEDY):
        g = tokens[i]
        out = model(input_ids=torch.tensor([[g]], dtype=torch.long),
                    past_key_values=past, use_cache=True)
        past = out.past_key_values
        row = out.logits[0, -1].float().clone()
        decode.append(row)

        # Cross-check against a full recompute of prompt + g0..gi (no cache).
        full_ids = torch.tensor([prompt + tokens[: i + 1]], dtype=torch.long)
        full = model(input_ids=full_ids, use_cache=False).logits[0, -1].float()
        diff = float((full - row).abs().max())
        assert diff <= RECOMPUTE_TOL, f"decode step {i}: recompute diff {diff}"
        _max_recompute_diff[0] = max(_max_recompute_diff[0], diff)

        if i + 1 < NUM_GREEDY:
            margins.append(top2_margin(row))
            tokens.append(int(torch.argmax(row)))
    # Margin of the (unused) argmax after the last step too, so that a 21st token would
    # also be stable; cheap and keeps the rule simple: every decode row has a clear top-1.
    margins.append(top2_margin(decode[-1]))

    assert len(tokens) == NUM_GREEDY and len(decode) == NUM_GREEDY
    return prefill, tokens, torch.stack(decode), margins


def make_prompts(seed):
    g = torch.Generator().manual_seed(PROMPT_SEED + seed)
    return [torch.randint(0, 256, (n,), generator=g).tolist() for n in PROMPT_LENGTHS]


def dir_size(path):
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def build_model(spec):
    config = spec["config"]()
    config.dtype = torch.float32  # written to config.json as "dtype" (4.57 renamed torch_dtype)
    torch.manual_seed(spec["seed"])  # HF init (overwritten below) also deterministic
    model = spec["cls"]._from_config(config, attn_implementation="eager",
                                     dtype=torch.float32)
    model.eval()
    randomize_(model, spec["seed"])
    if config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    else:
        assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    return model


def generate(spec):
    name = spec["name"]
    out_dir = os.path.join(OUT_ROOT, name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    model = build_model(spec)
    arch = type(model).__name__

    cases = []
    all_margins = []
    for prompt in make_prompts(spec["seed"]):
        prefill, tokens, decode, margins = run_case(model, prompt)
        mm = min(margins)
        assert mm > MIN_MARGIN, (
            f"{name}: greedy margin {mm} <= {MIN_MARGIN}; change the model seed")
        all_margins.extend(margins)
        cases.append(dict(
            prompt=prompt,
            greedy_tokens=tokens,
            min_margin=float("%.6g" % mm),
            prefill_logits=rows_to_json(prefill),
            decode_logits=rows_to_json(decode),
        ))

    save_kwargs = dict(safe_serialization=True)
    if spec["shard"]:
        save_kwargs["max_shard_size"] = spec["shard"]
    model.save_pretrained(out_dir, **save_kwargs)

    golden = dict(
        model=name,
        architecture=arch,
        versions=dict(torch=torch.__version__, transformers=transformers.__version__),
        num_greedy=NUM_GREEDY,
        cases=cases,
    )
    dump_golden(golden, os.path.join(out_dir, "golden.json"))
    return model


def verify(spec, ref_model):
    """Reload the saved checkpoint and check it reproduces golden.json bit for bit."""
    name = spec["name"]
    out_dir = os.path.join(OUT_ROOT, name)
    with open(os.path.join(out_dir, "golden.json")) as f:
        golden = json.load(f)
    model = AutoModelForCausalLM.from_pretrained(
        out_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    assert type(model) is spec["cls"], type(model)
    assert model.config.tie_word_embeddings == ref_model.config.tie_word_embeddings

    # Same parameters, bit for bit.
    ref_sd = ref_model.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref_sd[k]), f"{name}: reloaded {k} differs"

    stds = []
    margins = []
    for case in golden["cases"]:
        prompt = case["prompt"]
        want_prefill = torch.tensor(case["prefill_logits"], dtype=torch.float32)
        want_decode = torch.tensor(case["decode_logits"], dtype=torch.float32)
        got = model(input_ids=torch.tensor([prompt]), use_cache=False).logits[0].float()
        assert torch.equal(got, want_prefill), (
            f"{name}: reloaded prefill differs, max {float((got - want_prefill).abs().max())}")
        prefill, tokens, decode, mg = run_case(model, prompt)
        assert tokens == case["greedy_tokens"], f"{name}: greedy tokens differ on reload"
        assert torch.equal(decode, want_decode), (
            f"{name}: reloaded decode differs, max {float((decode - want_decode).abs().max())}")
        # g0 = argmax(prefill[-1]), g_{i+1} = argmax(decode[i])
        assert tokens[0] == int(torch.argmax(want_prefill[-1]))
        for i in range(1, NUM_GREEDY):
            assert tokens[i] == int(torch.argmax(want_decode[i - 1]))
        stds.append(float(want_prefill.std()))
        stds.append(float(want_decode.std()))
        margins.extend(mg)

    files = sorted(os.listdir(out_dir))
    print(f"== {name} ({golden['architecture']}), total {dir_size(out_dir)} bytes")
    for fn in files:
        print(f"   {fn:45s} {os.path.getsize(os.path.join(out_dir, fn)):9d}")
    print(f"   logit std ~{np.mean(stds):.3f}; min top1-top2 margin {min(margins):.5f}; "
          f"prompt lens {[len(c['prompt']) for c in golden['cases']]}; "
          f"greedy[0] {golden['cases'][0]['greedy_tokens']}")
    assert dir_size(out_dir) < 2 * 1024 * 1024


def main():
    torch.set_grad_enabled(False)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # determinism of CPU reductions across machines/thread counts
    os.makedirs(OUT_ROOT, exist_ok=True)
    only = set(sys.argv[1:])
    for spec in MODELS:
        if only and spec["name"] not in only:
            continue
        ref = generate(spec)
        verify(spec, ref)
    print(f"max |incremental decode - full recompute| = {_max_recompute_diff[0]:.3g}")
    print("ok")


if __name__ == "__main__":
    main()
