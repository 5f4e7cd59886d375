#!/usr/bin/env python3
"""Generate the DeepSeek-V2/V3 golden files (MLA attention, mixture of experts, FP8 block-scaled
weights, DMS on the latent cache) that tests/golden/golden_test.cc compares against.

Pinned versions as in make_golden.py (torch 2.9.1, transformers 4.57.3). Run from the repo root:
    /opt/golden-venv/bin/python tests/golden/make_golden_deepseek.py [name ...]

Writes tests/golden/models/<name>/ for:
    deepseek_v2      DeepseekV2ForCausalLM: q_lora off (q_proj), softmax group-limited routing,
                     dense layer 0 + MoE layer 1, default RoPE (interleaved pairs)
    deepseek_v2_greedy  the same with softmax greedy routing, every layer MoE
                     (first_k_dense_replace 0), 2 shared experts
    deepseek_v3      DeepseekV3ForCausalLM: q_lora on, sigmoid noaux_tc routing with
                     e_score_correction_bias, dense layer 0 + MoE layers 1-2, YaRN with mscale
                     and mscale_all_dim (attention factor and softmax-scale correction), rope
                     interleave
    deepseek_v3_fp8  deepseek_v3's model with its linear weights quantized to F8_E4M3 with
                     block scales (weight_scale_inv, quantization_config); golden logits from
                     transformers on the dequantized weights
    deepseek_v3_dms  deepseek_v3-like (2 layers, rope_interleave false: rotate-half RoPE) with a
                     DMS-MLA adapter (docs/dms.md §6): one decision per (token, layer); golden
                     from dms_reference.mla_dms_forward
Everything in float32 on CPU, eager attention, deterministic; golden.json as in README.md.
"""

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as mg  # noqa: E402  (asserts the pinned versions)

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    DeepseekV2Config,
    DeepseekV2ForCausalLM,
    DeepseekV3Config,
    DeepseekV3ForCausalLM,
)

from dms_reference import (  # noqa: E402
    add_mla_adapter_modules,
    dms_settings,
    mla_dms_forward,
)

VOCAB = 128
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=64,
    num_attention_heads=4,
    num_key_value_heads=4,
    rms_norm_eps=1e-6,
    max_position_embeddings=512,
    hidden_act="silu",
    attention_dropout=0.0,
    bos_token_id=None,
    eos_token_id=None,
    pad_token_id=None,
    tie_word_embeddings=False,
    kv_lora_rank=32,
    qk_nope_head_dim=16,
    qk_rope_head_dim=8,
    v_head_dim=16,
    n_routed_experts=8,
    num_experts_per_tok=2,
    n_shared_experts=1,
    moe_intermediate_size=16,
    first_k_dense_replace=1,
    n_group=4,
    topk_group=2,
)
CORRECTION_BIAS_STD = 0.05  # V3 e_score_correction_bias (a buffer: not set by randomize_)
FP8_BLOCK = [32, 16]  # small blocks so that the tiny weights span several (and partial) blocks
FP8_MODULES = ("q_a_proj", "q_b_proj", "q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj",
               "gate_proj", "up_proj", "down_proj")  # as DeepSeek-V3 ships: not the router
ROUTE_MIN_MARGIN = 1e-4  # top-k (and top-group) choice margins of every routed token

V2_CONFIG = lambda: DeepseekV2Config(  # noqa: E731
    **COMMON,
    num_hidden_layers=2,
    q_lora_rank=None,
    topk_method="group_limited_greedy",
    routed_scaling_factor=1.5,
    norm_topk_prob=False,
    rope_theta=10000.0,
    rope_scaling=None,
)


V2_GREEDY_CONFIG = lambda: DeepseekV2Config(  # noqa: E731
    **dict(COMMON, first_k_dense_replace=0, n_shared_experts=2),
    num_hidden_layers=2,
    q_lora_rank=None,
    topk_method="greedy",
    routed_scaling_factor=1.0,
    norm_topk_prob=False,
    rope_theta=10000.0,
    rope_scaling=None,
)


def v3_config(layers=3, rope_interleave=True, **extra):
    return DeepseekV3Config(
        **COMMON,
        num_hidden_layers=layers,
        q_lora_rank=24,
        norm_topk_prob=True,
        routed_scaling_factor=2.5,
        rope_theta=10000.0,
        rope_interleave=rope_interleave,
        rope_scaling={
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 128,
            "beta_fast": 32.0,
            "beta_slow": 1.0,
            "mscale": 1.0,
            "mscale_all_dim": 0.8,
        },
        **extra,
    )


MODELS = [
    # Seeds: the first that passes every check (margins, routing margins).
    dict(name="deepseek_v2", seed=2001, cls=DeepseekV2ForCausalLM, config=V2_CONFIG),
    dict(name="deepseek_v2_greedy", seed=2003, cls=DeepseekV2ForCausalLM,
         config=V2_GREEDY_CONFIG),
    dict(name="deepseek_v3", seed=2002, cls=DeepseekV3ForCausalLM, config=v3_config),
    dict(name="deepseek_v3_fp8", seed=2002, cls=DeepseekV3ForCausalLM, config=v3_config, fp8=True),
]

DMS_KEYS = dict(dms_window_size=8, dms_alpha_scale=100.0, dms_initial_alpha_offset=5.0,
                dms_separate_alpha=True, dms_alpha_per="head", dms_cr=8)
DMS_MODEL = dict(name="deepseek_v3_dms", seed=2008)  # 2004-2007: a case outside 70-90 % evicted
DMS_PROMPT_LENGTHS = (5, 11, 23, 40)


def make_prompts(seed, lengths=mg.PROMPT_LENGTHS):
    g = torch.Generator().manual_seed(mg.PROMPT_SEED + seed)
    return [torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in lengths]


def build(spec, config):
    config.dtype = torch.float32
    torch.manual_seed(spec["seed"])
    model = spec["cls"]._from_config(config, attn_implementation="eager", dtype=torch.float32)
    model.eval()
    return model


def randomize(model, seed):
    mg.randomize_(model, seed)
    g = torch.Generator().manual_seed(seed + 99)
    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is not None and hasattr(gate, "e_score_correction_bias"):
            gate.e_score_correction_bias.copy_(
                CORRECTION_BIAS_STD * torch.randn(gate.e_score_correction_bias.shape, generator=g))


# --- routing margins --------------------------------------------------------------------------

def route_margins(cfg, x, gate):
    """Smallest gap between the k-th and (k+1)-th choice (and between the topk_group-th and
    next group) over the tokens x [N, hidden]: a near-tie could route differently in rami."""
    logits = x.float() @ gate.weight.float().T
    e, k = cfg.n_routed_experts, cfg.num_experts_per_tok
    if isinstance(cfg, DeepseekV3Config):
        choice = logits.sigmoid() + gate.e_score_correction_bias
        group = choice.view(-1, cfg.n_group, e // cfg.n_group).topk(2, dim=-1)[0].sum(-1)
    else:
        choice = logits.softmax(-1)
        group = choice.view(-1, cfg.n_group, e // cfg.n_group).max(-1).values
    gs = group.sort(-1, descending=True).values
    margin = float((gs[:, cfg.topk_group - 1] - gs[:, cfg.topk_group]).min())
    keep = torch.zeros_like(group).scatter_(1, group.topk(cfg.topk_group, -1)[1], 1)
    masked = choice.masked_fill(~keep.repeat_interleave(e // cfg.n_group, -1).bool(), 0.0)
    cs = masked.sort(-1, descending=True).values
    return min(margin, float((cs[:, k - 1] - cs[:, k]).min()))


class RouteWatch:
    """Collects the router inputs of every MoE layer while it is active."""

    def __init__(self, model):
        self.model, self.inputs, self.hooks = model, [], []
        for layer in model.model.layers:
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None:
                self.hooks.append(gate.register_forward_pre_hook(
                    lambda mod, args, gate=gate: self.inputs.append(
                        (gate, args[0].reshape(-1, args[0].shape[-1]).clone()))))

    def min_margin(self):
        return min(route_margins(self.model.config, x, gate) for gate, x in self.inputs)

    def close(self):
        for h in self.hooks:
            h.remove()


# --- FP8 ----------------------------------------------------------------------------------------

def fp8_quantize(w, block):
    """e4m3 values and float32 scale_inv [ceil(R/br), ceil(C/bc)] with w ≈ q · scale_inv."""
    br, bc = block
    R, C = w.shape
    sr, sc = -(-R // br), -(-C // bc)
    scale = torch.zeros(sr, sc, dtype=torch.float32)
    for i in range(sr):
        for j in range(sc):
            amax = float(w[i * br:(i + 1) * br, j * bc:(j + 1) * bc].abs().max())
            scale[i, j] = amax / 448.0 if amax > 0 else 1.0
    full = scale.repeat_interleave(br, 0)[:R].repeat_interleave(bc, 1)[:, :C]
    q = (w / full).to(torch.float8_e4m3fn)
    return q, scale


def fp8_dequantize(q, scale, block):
    br, bc = block
    R, C = q.shape
    full = scale.repeat_interleave(br, 0)[:R].repeat_interleave(bc, 1)[:, :C]
    return q.float() * full


def quantize_model_(model):
    """Replace every FP8_MODULES weight by its dequantized e4m3 value; return the tensors to
    save: F8_E4M3 weights with `<name>_scale_inv`, everything else float32."""
    tensors = {}
    for name, p in model.state_dict().items():
        module = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else ""
        if name.endswith(".weight") and module in FP8_MODULES and p.dim() == 2:
            q, scale = fp8_quantize(p, FP8_BLOCK)
            p.copy_(fp8_dequantize(q, scale, FP8_BLOCK))
            tensors[name] = q.contiguous()
            tensors[name + "_scale_inv"] = scale.contiguous()
        else:
            tensors[name] = p.detach().clone().contiguous()
    return tensors


# --- generation ---------------------------------------------------------------------------------

def write_golden(out_dir, name, arch, cases, dms=None):
    golden = dict(model=name, architecture=arch,
                  versions=dict(torch=torch.__version__, transformers=transformers.__version__),
                  num_greedy=mg.NUM_GREEDY, cases=cases)
    if dms is not None:
        golden["dms"] = dms
    mg.dump_golden(golden, os.path.join(out_dir, "golden.json"))


def generate(spec):
    name = spec["name"]
    out_dir = os.path.join(mg.OUT_ROOT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    config = spec["config"]()
    fp8 = spec.get("fp8", False)
    if fp8:
        config.quantization_config = {"quant_method": "fp8", "fmt": "e4m3",
                                      "activation_scheme": "dynamic",
                                      "weight_block_size": FP8_BLOCK}
    model = build(spec, config)
    randomize(model, spec["seed"])
    tensors = quantize_model_(model) if fp8 else None

    watch = RouteWatch(model)
    cases, margins = [], []
    for prompt in make_prompts(spec["seed"]):
        prefill, tokens, decode, mgs = mg.run_case(model, prompt)
        assert min(mgs) > mg.MIN_MARGIN, f"{name}: greedy margin {min(mgs)}; change the seed"
        margins.extend(mgs)
        cases.append(dict(prompt=prompt, greedy_tokens=tokens,
                          min_margin=float("%.6g" % min(mgs)),
                          prefill_logits=mg.rows_to_json(prefill),
                          decode_logits=mg.rows_to_json(decode)))
    route = watch.min_margin()
    watch.close()
    assert route > ROUTE_MIN_MARGIN, f"{name}: routing margin {route}; change the seed"

    if fp8:
        config.architectures = [type(model).__name__]
        config.save_pretrained(out_dir)
        save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
        # The file holds exactly the dequantized model.
        loaded = load_file(os.path.join(out_dir, "model.safetensors"))
        for k, v in model.state_dict().items():
            got = (fp8_dequantize(loaded[k], loaded[k + "_scale_inv"], FP8_BLOCK)
                   if k + "_scale_inv" in loaded else loaded[k])
            assert torch.equal(got, v), f"{name}: {k} does not round-trip"
        assert sum(v.dtype == torch.float8_e4m3fn for v in loaded.values()) > 20
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
        reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32,
                                                        attn_implementation="eager")
        reloaded.eval()
        assert type(reloaded) is spec["cls"]
        for k, v in reloaded.state_dict().items():
            assert torch.equal(v, model.state_dict()[k]), f"{name}: reloaded {k} differs"
        for c in cases:
            got = reloaded(input_ids=torch.tensor([c["prompt"]]), use_cache=False).logits[0]
            assert torch.equal(got, torch.tensor(c["prefill_logits"])), f"{name}: reload differs"
    write_golden(out_dir, name, type(model).__name__, cases)
    print(f"== {name} ({type(model).__name__}), {mg.dir_size(out_dir)} bytes; min margin "
          f"{min(margins):.4g}; min routing margin {route:.3g}; greedy[0] "
          f"{cases[0]['greedy_tokens']}")


# --- DMS-MLA ------------------------------------------------------------------------------------

def layer_inputs(model, ids, dms):
    captured, hooks = [], []
    for layer in model.model.layers:
        hooks.append(layer.input_layernorm.register_forward_pre_hook(
            lambda mod, args: captured.append(args[0][0].clone())))
    try:
        mla_dms_forward(model, ids, dms)
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(captured)


def bias_decisions_(model, dms, seed):
    """As make_golden.bias_decisions_ for the adapter: a common embedding component, then per
    layer the adapter row + beta · d (d the unit mean of its normed input) with beta bisected
    for an eviction rate of mg.DMS_TARGET_RATE on random calibration sequences."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed + mg.DMS_SURGERY_SEED)
    u = torch.randn(cfg.hidden_size, generator=g)
    model.model.embed_tokens.weight.add_(mg.DMS_EMBED_SHIFT * u / u.norm())
    calib = [torch.randint(0, VOCAB, (mg.DMS_CALIB_LEN,), generator=g).tolist()
             for _ in range(mg.DMS_CALIB_SEQS)]
    betas = []
    for l, layer in enumerate(model.model.layers):
        attn = layer.self_attn
        x = torch.cat([layer_inputs(model, ids, dms)[l] for ids in calib])
        feat = attn.dms_proj_alpha_norm(x)
        d = feat.mean(0)
        d = d / d.norm()
        weight = attn.dms_proj_alpha.weight
        base = weight[0].clone()

        def rate(beta):
            weight[0] = base + beta * d
            logit = attn.dms_proj_alpha(feat)[:, 0] * dms["dms_alpha_scale"] \
                - dms["dms_initial_alpha_offset"]
            return float((logit > 0).float().mean())

        lo, hi = 0.0, 8.0
        assert rate(hi) > mg.DMS_TARGET_RATE
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if rate(mid) < mg.DMS_TARGET_RATE else (lo, mid)
        beta = float("%.2g" % hi)
        weight[0] = base + beta * d
        betas.append(beta)
    return betas


def run_dms_case(model, prompt, dms):
    logits, alpha, alpha_logit = mla_dms_forward(model, prompt, dms)
    prefill = logits
    min_decision = float(alpha_logit.abs().min())
    margins = [mg.top2_margin(prefill[-1])]
    tokens = [int(torch.argmax(prefill[-1]))]
    decode = []
    for i in range(mg.NUM_GREEDY):
        prev_logits, prev_alpha = logits, alpha
        logits, alpha, alpha_logit = mla_dms_forward(model, prompt + tokens[: i + 1], dms)
        assert torch.equal(alpha[..., :-1], prev_alpha), f"step {i}: decisions changed"
        assert float((logits[:-1] - prev_logits).abs().max()) <= mg.RECOMPUTE_TOL
        min_decision = min(min_decision, float(alpha_logit.abs().min()))
        decode.append(logits[-1].clone())
        if i + 1 < mg.NUM_GREEDY:
            margins.append(mg.top2_margin(decode[-1]))
            tokens.append(int(torch.argmax(decode[-1])))
    margins.append(mg.top2_margin(decode[-1]))
    return prefill, tokens, torch.stack(decode), margins, alpha, min_decision


def generate_dms(spec):
    name = spec["name"]
    out_dir = os.path.join(mg.OUT_ROOT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    config = v3_config(layers=2, rope_interleave=False, **DMS_KEYS)
    model = build(dict(spec, cls=DeepseekV3ForCausalLM), config)
    add_mla_adapter_modules(model)
    randomize(model, spec["seed"])
    dms = dms_settings(model.config)
    betas = bias_decisions_(model, dms, spec["seed"])
    W = dms["dms_window_size"]

    cases = []
    watch = RouteWatch(model)
    for prompt in make_prompts(spec["seed"], DMS_PROMPT_LENGTHS):
        prefill, tokens, decode, margins, alpha, min_decision = run_dms_case(model, prompt, dms)
        assert min(margins) > mg.MIN_MARGIN, f"{name}: greedy margin; change the seed"
        assert min_decision > mg.DMS_MIN_DECISION_LOGIT, f"{name}: decision logit {min_decision}"
        stats = mg.dms_case_stats(prompt, alpha, W)
        assert mg.DMS_RATE_RANGE[0] <= stats["eviction_rate"] <= mg.DMS_RATE_RANGE[1], stats
        full = prompt + tokens
        # W = inf: exactly transformers' model (the adapter does not touch the attention).
        wide, _, _ = mla_dms_forward(model, full, dict(dms, dms_window_size=10**9))
        hf = model(input_ids=torch.tensor([full]), use_cache=False).logits[0].float()
        assert torch.equal(wide, hf), f"{name}: W=inf vs transformers {(wide - hf).abs().max()}"
        evicted, _, _ = mla_dms_forward(model, full, dms)
        assert float((evicted - wide).abs().max()) > 1e-2, f"{name}: eviction has no effect"
        cases.append(dict(prompt=prompt, greedy_tokens=tokens,
                          min_margin=float("%.6g" % min(margins)), **stats,
                          alpha=alpha.int().tolist(),
                          prefill_logits=mg.rows_to_json(prefill),
                          decode_logits=mg.rows_to_json(decode)))
    route = watch.min_margin()
    watch.close()
    assert route > ROUTE_MIN_MARGIN, f"{name}: routing margin {route}; change the seed"

    model.save_pretrained(out_dir, safe_serialization=True)
    sd = load_file(os.path.join(out_dir, "model.safetensors"))
    for k, v in model.state_dict().items():
        assert torch.equal(sd[k], v), k
    assert sorted(k for k in sd if ".dms_" in k) == sorted(
        f"model.layers.{i}.self_attn.{m}.weight" for i in range(2)
        for m in ("dms_proj_alpha", "dms_proj_alpha_norm"))
    with open(os.path.join(out_dir, "config.json")) as f:
        written = json.load(f)
    assert {k: written[k] for k in DMS_KEYS} == DMS_KEYS
    write_golden(out_dir, name, "DeepseekV3ForCausalLM", cases, dms=DMS_KEYS)
    print(f"== {name} (DMS-MLA adapter), {mg.dir_size(out_dir)} bytes; betas {betas}; "
          f"eviction rates {[round(c['eviction_rate'], 3) for c in cases]}; "
          f"live_final {[c['live_final'] for c in cases]}; min routing margin {route:.3g}")


def main():
    torch.set_grad_enabled(False)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    only = set(sys.argv[1:])
    for spec in MODELS:
        if not only or spec["name"] in only:
            generate(spec)
    if not only or DMS_MODEL["name"] in only:
        generate_dms(DMS_MODEL)
    print("ok")


if __name__ == "__main__":
    main()
