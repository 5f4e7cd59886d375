#!/usr/bin/env python3
"""Hugging Face `tokenizers` encode throughput on one thread, for comparison with
tools/tokenizer_bench.cc (same model directory, same text file, same paragraph split).

  /opt/golden-venv/bin/python tests/golden_tokenizer/bench_hf.py MODEL_DIR TEXT_FILE [REPEATS]
  /opt/golden-venv/bin/python tests/golden_tokenizer/bench_hf.py --make-text OUT_FILE [MB]
"""
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"  # one core, like rami's figure
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402


def split_docs(data):
    """Same split as tokenizer_bench.cc: ~4 KB paragraphs, cut after a newline (in bytes)."""
    docs, start = [], 0
    while start < len(data):
        end = data.find(b"\n", min(len(data), start + 4096))
        end = len(data) if end < 0 else end + 1
        docs.append(data[start:end].decode("utf-8"))
        start = end
    return docs


def make_text(path, megabytes):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_tokenizer_golden as g
    parts = [c for c in g.CORPUS if c] + g.training_text() + g.fuzz_strings(99, 500)
    chunk = "\n".join(parts) + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(chunk * max(1, int(megabytes * 1e6 / len(chunk.encode()))))


def main():
    if sys.argv[1] == "--make-text":
        make_text(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 4)
        return
    tok = Tokenizer.from_file(os.path.join(sys.argv[1], "tokenizer.json"))
    data = open(sys.argv[2], "rb").read()
    docs = split_docs(data)
    best, tokens = 1e30, 0
    for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 3):
        t0 = time.perf_counter()
        tokens = sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs)
        best = min(best, time.perf_counter() - t0)
    mb = len(data) / 1e6
    print("hf tokenizers: %.2f MB in %.3f s = %.2f MB/s, %.0f tokens/s (%d tokens, %d docs)"
          % (mb, best, mb / best, tokens / best, tokens, len(docs)))


if __name__ == "__main__":
    main()
