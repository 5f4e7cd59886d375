"""A plain PyTorch reference of DMS (docs/dms.md sections 1-3) on top of transformers' Qwen3,
and of DMS on MLA (section 6) on top of transformers' DeepSeek-V3 (mla_dms_forward).

Used by make_golden.py to produce the qwen3_dms / qwen3_dms_adapter golden files.

Everything but the attention computation is Hugging Face's own code and weights: embeddings,
input/post-attention RMSNorms, q/k/v/o projections, q_norm/k_norm, RoPE
(`apply_rotary_pos_emb`), the MLP, the final norm and lm_head.  What is added:

* the decision logit per (layer, KV head, token):
    - borrowed neuron (dms_separate_alpha false): float32(q[h*G][D-1]) * scale - offset, read
      after q_norm and before RoPE; that query channel is then zeroed before RoPE and again
      after RoPE;
    - adapter (dms_separate_alpha true):
      dms_proj_alpha(dms_proj_alpha_norm(x)) * scale - offset, x = the decoder layer's input
      (the residual stream, before input_layernorm); no query channel is zeroed;
  alpha = logit > 0 (1 = evict once the token leaves the window);
* the one-token shift e[t-1] = alpha[t] (alpha[0] discarded, the newest token pending = keep);
* the visibility mask: query t sees key k iff k <= t and (t - k <= W or e[k] == 0), per
  (layer, KV head), applied as an explicit additive mask (0 / float32 min, exactly like
  transformers' eager causal mask) to transformers' own eager attention.

No KV cache: every call recomputes the whole sequence.  Decisions are causal (alpha at t
depends only on tokens <= t), so the rows of a longer run equal those of a shorter one.
"""

import torch
from torch import nn

from transformers.models.qwen3.modeling_qwen3 import (
    Qwen3RMSNorm,
    apply_rotary_pos_emb,
    eager_attention_forward,
)

# The reference defaults of docs/dms.md section 1.
DMS_DEFAULTS = dict(
    dms_window_size=512,
    dms_alpha_scale=100.0,
    dms_initial_alpha_offset=5.0,
    dms_separate_alpha=False,
    dms_alpha_per="head",
    dms_disable_eviction=False,
    dms_cr=8,
)


def dms_settings(config, **override):
    """The DMS settings of a config (absent keys take the reference defaults)."""
    s = {k: getattr(config, k, v) for k, v in DMS_DEFAULTS.items()}
    s.update(override)
    assert s["dms_alpha_per"] == "head", "only dms_alpha_per 'head' is implemented here"
    assert not s["dms_disable_eviction"], "dms_disable_eviction is not implemented here"
    return s


def add_adapter_modules(model):
    """Give every attention layer the adapter parameters of dms_separate_alpha mode:
    self_attn.dms_proj_alpha (Linear hidden -> num_kv_heads, bias iff attention_bias) and
    self_attn.dms_proj_alpha_norm (RMSNorm over hidden, eps = rms_norm_eps).  They are
    ordinary submodules, so save_pretrained / state_dict carry them under
    model.layers.{i}.self_attn.dms_proj_alpha.weight / .dms_proj_alpha_norm.weight."""
    cfg = model.config
    for layer in model.model.layers:
        attn = layer.self_attn
        attn.dms_proj_alpha = nn.Linear(cfg.hidden_size, cfg.num_key_value_heads,
                                        bias=cfg.attention_bias, dtype=torch.float32)
        attn.dms_proj_alpha_norm = Qwen3RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
    return model


def visibility(alpha, window):
    """alpha: bool [..., T] (alpha[t] decides the fate of token t-1).
    Returns bool [..., T(query), T(key)]: query t sees key k iff k <= t and
    (t - k <= window or e[k] == 0), with e[k] = alpha[k+1] and the newest flag pending."""
    T = alpha.shape[-1]
    e = torch.zeros_like(alpha)
    e[..., :-1] = alpha[..., 1:]          # e[t-1] = alpha_t; alpha_0 discarded; e[T-1] pending
    t = torch.arange(T).view(T, 1)
    k = torch.arange(T).view(1, T)
    causal = k <= t
    in_window = (t - k) <= window
    kept = ~e.unsqueeze(-2)               # [..., 1, T(key)]
    return causal & (in_window | kept)


def live_counts(alpha, t, window):
    """Size of the visible set of query t (only alpha[..., :t+1] is used: decisions are
    causal), per leading index.  alpha: bool [..., T]."""
    vis = visibility(alpha[..., : t + 1], window)
    return vis[..., t, :].sum(-1)


@torch.no_grad()
def dms_forward(model, ids, dms):
    """Full (no-cache) forward of one sequence under DMS.

    Returns (logits [T, vocab] float32, alpha bool [layers, kv_heads, T],
             alpha_logit float32 [layers, kv_heads, T])."""
    cfg = model.config
    n_heads = cfg.num_attention_heads
    n_kv = cfg.num_key_value_heads
    G = n_heads // n_kv
    W = dms["dms_window_size"]
    scale = dms["dms_alpha_scale"]
    offset = dms["dms_initial_alpha_offset"]
    separate = dms["dms_separate_alpha"]

    input_ids = torch.tensor([ids], dtype=torch.long)
    T = input_ids.shape[1]
    position_ids = torch.arange(T).unsqueeze(0)

    hidden = model.model.embed_tokens(input_ids)                      # [1, T, hidden]
    cos, sin = model.model.rotary_emb(hidden, position_ids)

    alphas, alpha_logits = [], []
    for layer in model.model.layers:
        attn = layer.self_attn
        D = attn.head_dim
        residual = hidden                                              # layer input x
        xn = layer.input_layernorm(hidden)

        shape = (1, T, -1, D)
        q = attn.q_norm(attn.q_proj(xn).view(shape)).transpose(1, 2)   # [1, heads, T, D]
        k = attn.k_norm(attn.k_proj(xn).view(shape)).transpose(1, 2)   # [1, kv, T, D]
        v = attn.v_proj(xn).view(shape).transpose(1, 2)

        if separate:
            a = attn.dms_proj_alpha(attn.dms_proj_alpha_norm(residual))  # [1, T, kv]
            logit = a[0].transpose(0, 1).float() * scale - offset         # [kv, T]
        else:
            logit = q[0, ::G, :, D - 1].float() * scale - offset          # [kv, T] heads h*G
            q = q.clone()
            q[:, ::G, :, D - 1] = 0.0
        alpha = logit > 0

        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if not separate:
            q[:, ::G, :, D - 1] = 0.0

        vis = visibility(alpha, W).repeat_interleave(G, dim=0)          # [heads, T, T]
        mask = torch.zeros(vis.shape, dtype=q.dtype)
        mask = mask.masked_fill(~vis, torch.finfo(q.dtype).min).unsqueeze(0)
        out, _ = eager_attention_forward(attn, q, k, v, mask, scaling=attn.scaling)
        out = attn.o_proj(out.reshape(1, T, -1).contiguous())
        hidden = residual + out

        residual = hidden
        hidden = residual + layer.mlp(layer.post_attention_layernorm(hidden))

        alphas.append(alpha)
        alpha_logits.append(logit)

    hidden = model.model.norm(hidden)
    logits = model.lm_head(hidden)[0].float()
    return logits, torch.stack(alphas), torch.stack(alpha_logits)


@torch.no_grad()
def layer_inputs(model, ids, dms):
    """The residual stream entering each decoder layer under DMS, [layers, T, hidden]
    (for calibrating the decision weights)."""
    captured = []
    hooks = []
    # dms_forward calls layer.input_layernorm(hidden) with the layer input: capture it there.
    for layer in model.model.layers:
        hooks.append(layer.input_layernorm.register_forward_pre_hook(
            lambda mod, args: captured.append(args[0][0].clone())))
    try:
        dms_forward(model, ids, dms)
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(captured)


# ---------------------------------------------------------------------------------------------
# DMS on MLA (docs/dms.md section 6): DeepSeek-V3, one decision per (token, layer) from the
# adapter (dms_proj_alpha: hidden -> 1), applied to the latent cache shared by every head.
# ---------------------------------------------------------------------------------------------

def add_mla_adapter_modules(model):
    """self_attn.dms_proj_alpha (Linear hidden -> 1, bias iff attention_bias) and
    self_attn.dms_proj_alpha_norm (RMSNorm over hidden, eps = rms_norm_eps) per layer."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3RMSNorm
    cfg = model.config
    for layer in model.model.layers:
        attn = layer.self_attn
        attn.dms_proj_alpha = nn.Linear(cfg.hidden_size, 1, bias=cfg.attention_bias,
                                        dtype=torch.float32)
        attn.dms_proj_alpha_norm = DeepseekV3RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
    return model


@torch.no_grad()
def mla_dms_forward(model, ids, dms):
    """Full (no-cache) forward of one sequence of a DeepSeek-V3 model under DMS-MLA.

    Everything is transformers' own modules: each layer's attention module is called with the
    DMS visibility mask (one per layer: the latent is shared by every head) in place of the
    causal mask, so W = inf reproduces transformers exactly.
    Returns (logits [T, vocab] float32, alpha bool [layers, 1, T],
             alpha_logit float32 [layers, 1, T])."""
    W = dms["dms_window_size"]
    scale = dms["dms_alpha_scale"]
    offset = dms["dms_initial_alpha_offset"]
    assert dms["dms_separate_alpha"], "MLA needs the adapter (dms_separate_alpha true)"
    input_ids = torch.tensor([ids], dtype=torch.long)
    T = input_ids.shape[1]
    hidden = model.model.embed_tokens(input_ids)
    position_embeddings = model.model.rotary_emb(hidden, torch.arange(T).unsqueeze(0))
    alphas, alpha_logits = [], []
    for layer in model.model.layers:
        attn = layer.self_attn
        residual = hidden
        a = attn.dms_proj_alpha(attn.dms_proj_alpha_norm(residual))      # [1, T, 1]
        logit = a[0].transpose(0, 1).float() * scale - offset             # [1, T]
        alpha = logit > 0
        vis = visibility(alpha, W)                                        # [1, T, T]
        mask = torch.zeros(vis.shape, dtype=hidden.dtype)
        mask = mask.masked_fill(~vis, torch.finfo(hidden.dtype).min).unsqueeze(0)
        out, _ = attn(hidden_states=layer.input_layernorm(hidden),
                      position_embeddings=position_embeddings, attention_mask=mask)
        hidden = residual + out
        residual = hidden
        hidden = residual + layer.mlp(layer.post_attention_layernorm(hidden))
        alphas.append(alpha)
        alpha_logits.append(logit)
    logits = model.lm_head(model.model.norm(hidden))[0].float()
    return logits, torch.stack(alphas), torch.stack(alpha_logits)
