#!/usr/bin/env python3
"""Writes rami's tokenizer and chat-template golden files (see README.md beside this file).

Trains small BPE tokenizers with Hugging Face `tokenizers`, configured like the real Qwen2/3,
Llama 3, DeepSeek-V3, GPT-2 and Llama 2 ones (same normalizers, split regexes, byte-level or
SentencePiece-style byte-fallback models, added/special tokens), then records encode/decode
results over a test corpus. Renders the real chat templates in templates/ with transformers'
apply_chat_template, and a table of Jinja snippets with jinja2 configured as transformers does.

Run with the pinned versions below (no network needed):
  /opt/golden-venv/bin/python tests/golden_tokenizer/make_tokenizer_golden.py
"""
import json
import os
import random
import sys

import jinja2
import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import processors, trainers

PINNED = {"tokenizers": "0.22.2", "transformers": "4.57.3", "jinja2": "3.1.6"}
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

# Split regexes as written in the real tokenizer.json files.
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
             r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
DEEPSEEK_V3_RES = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
    r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
]

CORPUS = [
    "", "Hello world", "Hello, world!", "  leading spaces", "trailing spaces   ",
    "tabs\t\tand\nnewlines\r\nand\r\rreturns", "a" + " " * 40 + "b", "\n\n\n\n", "   \n  \n ",
    "x\u00a0\u00a0y\u2003z\u3000w", "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n", "if x==1:print('ok');;;",
    "1234567890", "3.14159 2.71828", "1,000,000 and 12345 67 8", "0x1F 0b1010 1e-9", "٣٤٥ ½ ² Ⅻ",
    "I'm, you're, they'll, it's, we've, he'd, DON'T, I'M, 'S 'T", "rock'n'roll o'clock",
    "你好，世界！这是一个测试。", "日本語のテキストとカタカナ、ひらがな。", "한국어 텍스트 입니다",
    "Hello世界123abc", "مرحبا بالعالم", "नमस्ते दुनिया", "Привет, мир! ΑΒΓ αβγ",
    "👋🏽 family: 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 ok👍", "😀😃😄😁", "e\u0301 vs \u00e9, A\u030a vs \u00c5",
    "\ufb01 ligature, \u2126 ohm, \u212b angstrom", "Cafe\u0301 na\u0308ive re\u0301sume\u0301",
    "zero\u200bwidth\u200djoiner\ufeffbom", "\ufffd replacement \ufffd\ufffd", "\x00\x01\x02\x7f ctrl",
    "\U0010ffff \uffff \U0001f9d1\u200d\U0001f680", "<|endoftext|>",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "text<think>inner thoughts</think>after", "<|im_start|><|im_start|><|im_end|>",
    "<|im_sta partial <|im_end", "<<|im_end|>>", "hello <mask> world", "hello<mask>world",
    "  <mask>  spaced  ", "a [MASKWORD] b", "x[MASKWORD]y", "<|begin_of_text|>Hi<|eot_id|>",
    "<s>inner</s> <unk>", "The quick brown fox jumps over the lazy dog. " * 3,
    "https://example.com/path?q=1&r=two#frag", "user@example.com; C:\\Windows\\path",
    "$$\\frac{a}{b}$$ and `code` and **bold** _it_", "--- === +++ ... !!! ??? ",
]

FUZZ_POOL = (list("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,;:'\"!?-_()[]{}<>|/\\\n\t\r")
             + list("   \n") + ["\u00a0", "\u2003", "\u0301", "\u0308", "\u200d", "\ufe0f"]
             + list("你好世界日本語カタカナひらがな한국어éüßøçΩЖ") + ["👋", "🏽", "👨", "🇫", "😀"]
             + ["<|im_start|>", "<|im_end|>", "<think>", "<mask>", "<|endoftext|>", "<s>", "</s>",
                "[MASKWORD]", "<|eot_id|>", "'s", "'LL", "1234", "  ", "\r\n"])


def fuzz_strings(seed, count):
    rng = random.Random(seed)
    return ["".join(rng.choice(FUZZ_POOL) for _ in range(rng.randint(1, 40)))
            for _ in range(count)]


def training_text():
    lines = [c for c in CORPUS if c] * 4
    lines += fuzz_strings(7, 300)
    base = ("In the beginning the universe was created. This has made a lot of people very "
            "angry and been widely regarded as a bad move. The ships hung in the sky in much the "
            "same way that bricks don't. Time is an illusion. Lunchtime doubly so. ")
    lines += [base * 3, "def main():\n    print('hello')\n    return 0\n" * 5,
              "机器学习是人工智能的一个分支。深度学习使用神经网络。" * 5, "1 22 333 4444 55555 " * 10]
    return lines


def added(content, special, normalized=False, lstrip=False, rstrip=False, single_word=False):
    return tokenizers.AddedToken(content, special=special, normalized=normalized, lstrip=lstrip,
                                 rstrip=rstrip, single_word=single_word)


BYTE_LEVEL_ADDED = [added("<|endoftext|>", True), added("<|im_start|>", True),
                    added("<|im_end|>", True), added("<think>", False), added("</think>", False),
                    added("<mask>", True, lstrip=True, rstrip=True),
                    added("[MASKWORD]", False, normalized=True, single_word=True)]


def byte_level_tokenizer(name):
    tok = Tokenizer(models.BPE(ignore_merges=(name == "llama3")))
    if name == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    elif name == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    elif name == "deepseek_v3":
        tok.normalizer = normalizers.Sequence([])
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False)
             for r in DEEPSEEK_V3_RES]
            + [pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                        use_regex=False)])
    elif name == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer)
    if name == "llama3":
        tok.add_special_tokens([added("<|begin_of_text|>", True), added("<|eot_id|>", True)])
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                          pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    for t in BYTE_LEVEL_ADDED:
        if t.special:
            tok.add_special_tokens([t])
        else:
            tok.add_tokens([t])
    return tok


def sentencepiece_tokenizer(name):
    """Llama 2 style: byte-fallback BPE over '▁'-joined text, <unk>/<s>/</s> then <0xXX>."""
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                                   normalizers.Replace(" ", "▁")])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never",
                                                         split=True)
    trainer = trainers.BpeTrainer(vocab_size=900, min_frequency=2, show_progress=False)
    trainer_tok.train_from_iterator([c for c in training_text() if "\x00" not in c], trainer)
    trained = json.loads(trainer_tok.to_str())
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    model = models.BPE(vocab=vocab, merges=[tuple(m) if isinstance(m, list) else tuple(m.split())
                                            for m in trained["model"]["merges"]],
                       unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    tok = Tokenizer(model)
    if name == "llama2":  # legacy converter: normalizer does the '▁' work, no pre-tokenizer
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                               normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                         decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    else:  # llama2_metaspace: the newer converter's Metaspace pre-tokenizer and decoder
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                     split=False)
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.add_special_tokens([added("<unk>", True), added("<s>", True), added("</s>", True)])
    tok.add_tokens([added("<mask>", False, lstrip=True, rstrip=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                       special_tokens=[("<s>", 1)])
    return tok


def encode_goldens(tok, seed):
    cases = []
    for text in CORPUS + fuzz_strings(seed, 120):
        plain = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "text": text, "ids": plain,
            "ids_special": tok.encode(text, add_special_tokens=True).ids,
            "decoded": tok.decode(plain, skip_special_tokens=False),
            "decoded_skip": tok.decode(plain, skip_special_tokens=True),
        })
    rng = random.Random(seed + 1)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    decodes = []
    for _ in range(150):
        ids = [rng.randrange(vocab_size) for _ in range(rng.randint(1, 12))]
        decodes.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                        "text_skip": tok.decode(ids, skip_special_tokens=True)})
    return {"encode": cases, "decode": decodes}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def make_tokenizers():
    configs = {"qwen2": byte_level_tokenizer, "llama3": byte_level_tokenizer,
               "deepseek_v3": byte_level_tokenizer, "gpt2": byte_level_tokenizer,
               "llama2": sentencepiece_tokenizer, "llama2_metaspace": sentencepiece_tokenizer}
    for i, (name, make) in enumerate(configs.items()):
        tok = make(name)
        os.makedirs(os.path.join(DATA, name), exist_ok=True)
        tok.save(os.path.join(DATA, name, "tokenizer.json"), pretty=False)
        write_json(os.path.join(DATA, name, "golden.json"), encode_goldens(tok, 100 + i))
        print("tokenizer", name, tok.get_vocab_size())


# ---------------------------------------------------------------- chat templates

TEMPLATES = {  # name -> (file, special tokens passed to the template)
    "qwen3": ("qwen3.jinja", {"bos_token": None, "eos_token": "<|im_end|>",
                              "pad_token": "<|endoftext|>"}),
    "qwen2_5": ("qwen2_5.jinja", {"bos_token": None, "eos_token": "<|im_end|>",
                                  "pad_token": "<|endoftext|>"}),
    "llama3_1": ("llama3_1.jinja", {"bos_token": "<|begin_of_text|>",
                                    "eos_token": "<|eot_id|>"}),
    "deepseek_v3_1": ("deepseek_v3_1.jinja", {"bos_token": "<｜begin▁of▁sentence｜>",
                                              "eos_token": "<｜end▁of▁sentence｜>"}),
}

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather for a city, in °C.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "days": {"type": "integer"}},
                   "required": ["city"]}}}]

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "What is 2+2?"}],
    "system_user": [{"role": "system", "content": "  You are terse.  "},
                    {"role": "user", "content": "Hi!\nHow are you?  "}],
    "multi_turn": [{"role": "system", "content": "Be helpful."},
                   {"role": "user", "content": "Name a prime."},
                   {"role": "assistant", "content": "7"},
                   {"role": "user", "content": "Another one, 你好 👋"}],
    "assistant_last": [{"role": "user", "content": "Say hi"},
                       {"role": "assistant", "content": "Hi there!"}],
    "thinking_history": [{"role": "user", "content": "Q1"},
                         {"role": "assistant",
                          "content": "<think>\nstep one\nstep two\n</think>\n\nAnswer one"},
                         {"role": "user", "content": "Q2"},
                         {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nAnswer two"}],
    "reasoning_field": [{"role": "user", "content": "Q"},
                        {"role": "assistant", "content": "A", "reasoning_content": "because"}],
    "two_systems": [{"role": "system", "content": "First."}, {"role": "system", "content": "Second."},
                    {"role": "user", "content": "Go"}],
    "quotes_json": [{"role": "user", "content": "He said \"hi\" & 'bye' <tag> \\ back\tslash"}],
}

TOOL_CONVERSATIONS = {
    "tool_call": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {
            "name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "assistant", "content": "It is 21 °C."}],
}
DEEPSEEK_TOOL = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {
        "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "content": "{\"temp\": 21}"},
    {"role": "assistant", "content": "It is 21 °C."},
    {"role": "user", "content": "Thanks"}]


def render_chat_goldens():
    base = Tokenizer.from_file(os.path.join(DATA, "qwen2", "tokenizer.json"))
    cases = []
    for name, (fname, specials) in TEMPLATES.items():
        with open(os.path.join(HERE, "templates", fname), encoding="utf-8") as f:
            template = f.read()
        hf = transformers.PreTrainedTokenizerFast(tokenizer_object=base, **specials)
        convs = dict(CONVERSATIONS)
        if name == "deepseek_v3_1":
            convs["tool_call"] = DEEPSEEK_TOOL
        else:
            convs.update(TOOL_CONVERSATIONS)
        for conv_name, messages in convs.items():
            for gen in (False, True):
                extra_sets = [{}]
                if name in ("qwen3", "deepseek_v3_1"):
                    extra_sets = [{}, {"enable_thinking": False}, {"enable_thinking": True}]
                tool_sets = [None, TOOLS] if name != "deepseek_v3_1" else [None]
                for extra in extra_sets:
                    for tools in tool_sets:
                        try:
                            out = hf.apply_chat_template(messages, tools=tools, chat_template=template,
                                                         tokenize=False, add_generation_prompt=gen,
                                                         **extra)
                            err = None
                        except Exception as e:  # noqa: BLE001 - record template errors too
                            out, err = None, str(e)
                        cases.append({"template": name, "conversation": conv_name,
                                      "messages": messages, "tools": tools,
                                      "add_generation_prompt": gen, "extra": extra,
                                      "special_tokens": {k: v for k, v in specials.items() if v},
                                      "output": out, "error": err})
    write_json(os.path.join(DATA, "chat_golden.json"), cases)
    print("chat cases", len(cases))


# Snippets rendered by jinja2 configured as transformers configures it (trim_blocks,
# lstrip_blocks, loopcontrols); "plain" ones use jinja2's defaults.
SNIPPETS = [
    ("{{ 'a' ~ 1 ~ none }}|{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 10 }}|{{ 7 / 2 }}", {}),
    ("{{ x }}|{{ x.y }}|{{ x is defined }}|{{ y is undefined }}|{{ none is none }}", {"x": {"y": 3}}),
    ("{% for i in range(3) %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/"
     "{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}", {}),
    ("{% for a, b in pairs %}{{ a }}={{ b }}{% if not loop.last %}, {% endif %}{% endfor %}",
     {"pairs": [[1, "x"], [2, "y"]]}),
    ("{% for k, v in d.items() %}{{ k }}:{{ v }} {% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for x in [] %}no{% else %}empty{% endfor %}", {}),
    ("{% for x in xs if x > 1 %}{{ x }}{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}"
     "{{ x }}{% endfor %}", {"xs": [1, 2, 3, 4, 5]}),
    ("{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }} {% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}", {"xs": [1, 2, 3]}),
    ("  {% if true %}\n  yes\n  {% endif %}\n  after\n", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("{{- '  x  ' -}}  |  {{ ' y ' }}", {}),
    ("{# comment #}a{#- trimmed -#}  b", {}),
    ("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}"
     "{{ ns.n }}", {}),
    ("{% set x = 1 %}{% for i in range(2) %}{% set x = 5 %}{% endfor %}{{ x }}", {}),
    ("{{ '  hi  ' | trim }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hello world' | title }}|"
     "{{ 'hello' | capitalize }}", {}),
    ("{{ xs | length }}|{{ 'abc' | length }}|{{ xs | first }}|{{ xs | last }}|{{ xs | join(', ') }}"
     "|{{ xs | reverse | list }}|{{ xs | sort }}|{{ xs | sum }}|{{ xs | min }}|{{ xs | max }}",
     {"xs": [3, 1, 2]}),
    ("{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ 'é\"<' | tojson }}|{{ [1, 2.5, none, true] | tojson }}",
     {"d": {"b": [1, {"c": "x"}], "a": "ü"}}),
    ("{{ xs | map(attribute='n') | join(',') }}|{{ xs | selectattr('ok') | map(attribute='n') | list }}"
     "|{{ xs | rejectattr('ok') | list | length }}",
     {"xs": [{"n": 1, "ok": True}, {"n": 2, "ok": False}, {"n": 3, "ok": True}]}),
    ("{{ ns | select('equalto', 2) | list }}|{{ ns | reject('equalto', 2) | list }}|"
     "{{ ['a','b'] | map('upper') | list }}", {"ns": [1, 2, 3, 2]}),
    ("{{ 'a,b,,c'.split(',') }}|{{ 'a b  c'.split() }}|{{ ' x '.strip() }}|{{ 'xxhixx'.strip('x') }}"
     "|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith('bc') }}|{{ 'a-b'.replace('-', '+') }}", {}),
    ("{{ 'Hello'[1:3] }}|{{ 'Hello'[::-1] }}|{{ xs[-1] }}|{{ xs[1:] }}|{{ xs[:-1] }}|{{ xs[::2] }}",
     {"xs": [1, 2, 3, 4]}),
    ("{{ 'b' in 'abc' }}|{{ 2 in [1,2] }}|{{ 'k' in {'k': 1} }}|{{ 3 not in [1] }}", {}),
    ("{{ 1 is odd }}|{{ 2 is even }}|{{ 'x' is string }}|{{ 3 is number }}|{{ [1] is iterable }}|"
     "{{ {} is mapping }}|{{ none is none }}|{{ 4 is divisibleby 2 }}|{{ x is sequence }}|"
     "{{ true is boolean }}|{{ 1 is integer }}|{{ 1.5 is float }}", {"x": [1]}),
    ("{{ true and false }}|{{ true or false }}|{{ not true }}|{{ 1 < 2 <= 2 }}|{{ 1 != 2 }}|"
     "{{ 'a' if false else 'b' }}|{{ 'c' if true }}|{{ none or 'dflt' }}", {}),
    ("{{ x | default('d') }}|{{ none | default('d') }}|{{ none | default('d', true) }}|"
     "{{ '' | default('e', true) }}", {}),
    ("{{ 3 | string }}{{ '4' | int + 1 }}|{{ '2.5' | float }}|{{ 2.0 }}|{{ 1e3 }}|{{ 10 / 4 }}|"
     "{{ -3 // 2 }}|{{ 5 | abs }}|{{ 3.7 | round }}|{{ 3.14159 | round(2) }}", {}),
    ("{{ d.get('a') }}|{{ d.get('z', 'no') }}|{{ d.keys() | list }}|{{ d.values() | list }}|"
     "{{ d['a'] }}|{{ d.a }}", {"d": {"a": 1, "b": 2}}),
    ("{{ xs }}|{{ d }}|{{ 'q' }}|{{ none }}|{{ true }}|{{ [\"it's\", 'a\"b'] }}",
     {"xs": [1, "two", None, True, 1.5], "d": {"k": "v", "n": [1]}}),
    ("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
     "{{ greet('Ann') }} {{ greet('Bob', punct='?') }}", {}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}", {"a": False, "b": True}),
    ("{{ raise_exception('boom') if false else 'fine' }}", {}),
    ("{%- set msgs = messages[1:] -%}{% for m in msgs %}[{{ m.role }}]{% endfor %}",
     {"messages": [{"role": "system"}, {"role": "user"}, {"role": "assistant"}]}),
    ("{{ 'abc' | list }}|{{ 'a\nb' | indent(2) }}|{{ ' x ' ~ 'y' | trim }}|{{ 'x' * 3 }}|"
     "{{ [1] + [2] }}", {}),
    ("{% set t %}inner {{ 1 }}{% endset %}[{{ t }}]", {}),
    ("{{ items | items | list }}|{{ 'A-B' | replace('-', '_') }}|{{ xs | unique | list }}|"
     "{{ 'x' | center(5) }}|", {"items": {"a": 1}, "xs": [1, 1, 2]}),
    ("{% filter upper %}shout {{ 'me' }}{% endfilter %}", {}),
    ("{{ 'hello %s, %d' % ('bob', 3) }}|{{ '{} and {}'.format(1, 'b') }}", {}),
    ("{{ 'a' is in ['a'] }}|{{ 'x'|e }}|{{ '<b>'|safe }}|{{ xs|batch(2)|list }}", {"xs": [1, 2, 3]}),
]

PLAIN_SNIPPETS = [
    ("  {% if true %}\n  yes\n  {% endif %}\n  after\n", {}),
    ("line\n{% for i in range(2) %}\n{{ i }}\n{% endfor %}\nend", {}),
]


def render_snippets():
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    from jinja2.sandbox import ImmutableSandboxedEnvironment
    hf_env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                           extensions=["jinja2.ext.loopcontrols"])
    hf_env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
    hf_env.globals["raise_exception"] = raise_exception
    plain_env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols"])
    cases = []
    for env_name, env, table in (("hf", hf_env, SNIPPETS), ("plain", plain_env, PLAIN_SNIPPETS)):
        for src, ctx in table:
            try:
                out, err = env.from_string(src).render(**ctx), None
            except Exception as e:  # noqa: BLE001
                out, err = None, "%s: %s" % (type(e).__name__, e)
            cases.append({"env": env_name, "template": src, "context": ctx, "output": out,
                          "error": err})
    write_json(os.path.join(DATA, "jinja_snippets.json"), cases)
    print("snippets", len(cases))


def main():
    versions = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
                "jinja2": jinja2.__version__}
    if versions != PINNED:
        sys.exit("version mismatch: have %s, pinned %s" % (versions, PINNED))
    make_tokenizers()
    render_chat_goldens()
    render_snippets()
    write_json(os.path.join(DATA, "versions.json"), versions)


if __name__ == "__main__":
    main()
