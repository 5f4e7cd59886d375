"""Writes a byte-level tokenizer.json (one token per byte, ids 0-255, no merges) into the tiny
models whose vocabulary has 256 entries, so that the coordinator can take text prompts and
stream text for them. Run with the golden venv (tokenizers pinned in make_golden.py):

    /opt/golden-venv/bin/python tests/golden/make_byte_tokenizer.py
"""
import json
import pathlib

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tokenizers.pre_tokenizers import ByteLevel

MODELS = ["qwen3", "qwen3_dms"]


def main() -> None:
    alphabet = ByteLevel.alphabet()  # the GPT-2 byte -> printable character map
    byte_to_char = {b: c for b, c in zip(range(256), sorted(alphabet, key=lambda c: _byte(c)))}
    vocab = {byte_to_char[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    here = pathlib.Path(__file__).parent / "models"
    for name in MODELS:
        tok.save(str(here / name / "tokenizer.json"))
        (here / name / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 512},
                       indent=2) + "\n")
        ids = tok.encode("best-of-N 42").ids
        assert ids == list("best-of-N 42".encode()), ids
        print(name, "tokenizer.json written; 'best-of-N 42' ->", ids)


def _byte(c: str) -> int:
    # Inverse of GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256+.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip([chr(x) for x in cs], bs))[c]


if __name__ == "__main__":
    main()
