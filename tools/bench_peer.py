#!/usr/bin/env python3
"""The PyTorch peer of `rami-bench decode` (run by tests/gpu/run.sh).

1. sdpa: torch.nn.functional.scaled_dot_product_attention for one decode token per sequence
   over a dense bf16 KV cache, Qwen3-8B-shaped (32 query heads, 8 KV heads, head_dim 128, GQA
   through enable_gqa), one layer, at rami-bench's contexts and batch sizes.
2. transformers: a plain decode loop of transformers' Qwen3ForCausalLM, Qwen3-8B config, random
   bf16 weights made on the GPU, at one context (prefill, then timed one-token steps), for the
   small batches whose prefill fits; bounded by --hf_budget_s.

Writes {"rows": [{"kind": "sdpa"|"transformers", "context", "batch", "ms"}]} for
`rami-bench decode --peer=FILE`, which prints rami/peer ratios. Never fails the run: a missing
PyTorch, transformers or GPU, or an error in part 2, is reported and skipped (exit 0).

  python3 tools/bench_peer.py --out peer.json [--contexts 4096,32768]
      [--batches 1,16,24,32,128,256] [--hf_budget_s 45]
"""
import argparse
import json
import sys
import time

Q_HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def cuda_ms(torch, fn, iters):
    """Mean milliseconds of fn() over iters calls after 2 warm-ups, timed with CUDA events."""
    for _ in range(2):
        fn()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / iters


def sdpa_rows(torch, contexts, batches, iters):
    import torch.nn.functional as F

    rows = []
    print(f"peer sdpa: torch {torch.__version__}, dense bf16 cache, one layer")
    print(f"{'context':>7} {'batch':>6} {'ms':>9} {'GB/s':>8}")
    for context in contexts:
        for batch in batches:
            kv_bytes = 2 * batch * KV_HEADS * context * HEAD_DIM * 2
            free, _ = torch.cuda.mem_get_info()
            if kv_bytes + (4 << 30) > free:
                print(f"{context:>7} {batch:>6}   (does not fit)")
                continue
            q = torch.randn(batch, Q_HEADS, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
            k = torch.randn(batch, KV_HEADS, context, HEAD_DIM, device="cuda",
                            dtype=torch.bfloat16)
            v = torch.randn_like(k)
            ms = cuda_ms(torch, lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
                         iters)
            nbytes = kv_bytes + 2 * q.numel() * 2
            rows.append({"kind": "sdpa", "context": context, "batch": batch, "ms": ms})
            print(f"{context:>7} {batch:>6} {ms:>9.4f} {nbytes / ms / 1e6:>8.0f}")
            del q, k, v
            torch.cuda.empty_cache()
    return rows


def transformers_rows(torch, context, batches, steps, budget_s):
    import transformers

    start = time.monotonic()
    config = transformers.Qwen3Config(
        vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
        num_attention_heads=Q_HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
        max_position_embeddings=40960, tie_word_embeddings=False)
    # Weights made on the GPU in bf16 (no download, no 32 GB fp32 detour).
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = transformers.Qwen3ForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    print(f"peer transformers {transformers.__version__}: Qwen3-8B shape, random bf16 weights, "
          f"context {context}, {steps} timed steps (made in {time.monotonic() - start:.1f} s)")
    print(f"{'context':>7} {'batch':>6} {'step ms':>9} {'tokens/s':>9}")
    rows = []
    for batch in batches:
        if time.monotonic() - start > budget_s:
            print(f"{context:>7} {batch:>6}   (skipped: --hf_budget_s spent)")
            continue
        kv_bytes = 36 * 2 * batch * KV_HEADS * context * HEAD_DIM * 2
        free, _ = torch.cuda.mem_get_info()
        if 2 * kv_bytes + (8 << 30) > free:  # the prefill's activations need room too
            print(f"{context:>7} {batch:>6}   (does not fit)")
            continue
        with torch.inference_mode():
            ids = torch.randint(0, config.vocab_size, (batch, context), device="cuda")
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
            del out, ids

            def step():
                nonlocal token
                o = model(input_ids=token, past_key_values=cache, use_cache=True,
                          logits_to_keep=1)
                token = o.logits[:, -1:].argmax(-1)

            ms = cuda_ms(torch, step, steps)
        rows.append({"kind": "transformers", "context": context, "batch": batch, "ms": ms})
        print(f"{context:>7} {batch:>6} {ms:>9.3f} {batch / ms * 1e3:>9.0f}")
        del cache, token
        torch.cuda.empty_cache()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--contexts", default="4096,32768")
    parser.add_argument("--batches", default="1,16,24,32,128,256")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--hf_context", type=int, default=4096)
    parser.add_argument("--hf_batches", default="1,16,32")
    parser.add_argument("--hf_steps", type=int, default=5)
    parser.add_argument("--hf_budget_s", type=float, default=45.0)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("bench_peer: no PyTorch: peer skipped")
        return 0
    if not torch.cuda.is_available():
        print("bench_peer: no CUDA device: peer skipped")
        return 0
    def ints(text):
        return [int(x) for x in text.split(",") if x.strip()]

    rows = sdpa_rows(torch, ints(args.contexts), ints(args.batches), args.iters)
    if not ints(args.hf_batches) or args.hf_budget_s <= 0:
        print("bench_peer: transformers loop skipped (no batches or no time budget)")
    else:
        try:
            rows += transformers_rows(torch, args.hf_context, ints(args.hf_batches),
                                      args.hf_steps, args.hf_budget_s)
        except Exception as e:  # a peer problem must not fail the GPU run
            print(f"bench_peer: transformers loop skipped: {type(e).__name__}: {e}")
    torch.cuda.empty_cache()
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"torch": torch.__version__, "rows": rows}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
