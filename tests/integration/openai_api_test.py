"""rami's HTTP API through the official `openai` package, curl and promtool.

Run by openai_api_test.sh inside a local deployment: RAMI_HTTP is the HTTP API's base URL, the
served model is "tiny-dms" (the tiny DMS test model, byte-level tokenizer, ChatML template).
    python openai_api_test.py
"""
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import traceback
import urllib.request

import openai

BASE = os.environ["RAMI_HTTP"]
MODEL = "tiny-dms"
client = openai.OpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0)


def metrics() -> str:
    with urllib.request.urlopen(BASE + "/metrics", timeout=10) as r:
        return r.read().decode()


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + ('{' + labels + '}' if labels else ''))} (\S+)$", text,
                  re.MULTILINE)
    assert m, f"{name}{{{labels}}} not in /metrics"
    return float(m.group(1))


def test_models_and_health() -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL], models
    with urllib.request.urlopen(BASE + "/health", timeout=10) as r:
        assert r.status == 200


def test_completion_n4_votes_and_usage() -> None:
    r = client.completions.create(model=MODEL, prompt="The answer is", max_tokens=8, n=4,
                                  seed=11, extra_body={"ignore_eos": True,
                                                       "aggregation": "majority_vote",
                                                       "answer_regex": "(.)"})
    assert len(r.choices) == 4 and sorted(c.index for c in r.choices) == [0, 1, 2, 3]
    assert all(c.finish_reason == "length" for c in r.choices), r.choices
    assert r.usage.completion_tokens == 32 and r.usage.prompt_tokens > 0, r.usage
    job = r.model_extra["rami"]["jobs"][0]
    # The votes count every branch, and the answer is the most voted one.
    assert sum(v["count"] for v in job["votes"]) == 4, job
    assert job["answer"] == job["votes"][0]["answer"], job


def test_seed_reproduces() -> None:
    args = dict(model=MODEL, prompt="Once", max_tokens=12, n=2, seed=5, temperature=1.0,
                extra_body={"ignore_eos": True})
    a = client.completions.create(**args)
    b = client.completions.create(**args)
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    c = client.completions.create(**{**args, "seed": 6})
    assert [x.text for x in c.choices] != [x.text for x in a.choices]


def test_stop_string() -> None:
    greedy = dict(model=MODEL, prompt="abc", max_tokens=24, temperature=0,
                  extra_body={"ignore_eos": True})
    text = client.completions.create(**greedy).choices[0].text
    at = next((i for i, ch in enumerate(text) if i > 0 and ch.isascii() and ch.isprintable()),
              None)
    assert at is not None, f"no printable ASCII character to stop on in {text!r}"
    stopped = client.completions.create(**greedy, stop=[text[at]]).choices[0]
    assert stopped.text == text[:text.index(text[at])], (stopped.text, text)
    assert stopped.finish_reason == "stop"


def test_logprobs_and_echo() -> None:
    prompt = [5, 6, 7, 8]
    r = client.completions.create(model=MODEL, prompt=prompt, max_tokens=3, logprobs=2,
                                  echo=True, temperature=0, extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(prompt) + 3, lp
    assert lp.token_logprobs[0] is None  # the first prompt token has nothing before it
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:]), lp.token_logprobs
    assert all(len(t) <= 2 for t in lp.top_logprobs[1:])
    # Greedy: each generated token is the most likely one.
    for i in range(len(prompt), len(prompt) + 3):
        assert max(lp.top_logprobs[i].values()) <= lp.token_logprobs[i] + 1e-5, lp
    # Scoring the prompt plus greedy tokens (max_tokens 0, echo) gives back the log-probs those
    # tokens had when they were generated.
    generated = client.completions.create(
        model=MODEL, prompt=prompt, max_tokens=4, temperature=0, logprobs=0,
        extra_body={"ignore_eos": True, "return_tokens_as_token_ids": True}).choices[0].logprobs
    ids = [int(t.split(":")[1]) for t in generated.tokens]
    scored = client.completions.create(model=MODEL, prompt=prompt + ids, max_tokens=0, echo=True,
                                       logprobs=0).choices[0]
    assert scored.finish_reason == "length"
    assert scored.logprobs.token_logprobs[0] is None
    tail = scored.logprobs.token_logprobs[len(prompt):]
    assert len(tail) == 4
    for got, want in zip(tail, generated.token_logprobs):
        assert abs(got - want) < 1e-3, (tail, generated.token_logprobs)


def requests_json(path: str, body: dict) -> dict:
    req = urllib.request.Request(BASE + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_tokenize_detokenize() -> None:
    t = requests_json("/tokenize", {"model": MODEL, "prompt": "hi there"})
    assert t["count"] == len(t["tokens"]) > 0 and t["max_model_len"] == 512, t
    d = requests_json("/detokenize", {"model": MODEL, "tokens": t["tokens"]})
    assert d["prompt"].endswith("hi there"), d
    chat = requests_json("/tokenize", {"model": MODEL,
                                       "messages": [{"role": "user", "content": "hi there"}]})
    assert chat["count"] > t["count"], chat  # the template's tokens around the message


def test_chat_n4_streamed() -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is 2+2?"}], n=4,
        max_tokens=16, stream=True, stream_options={"include_usage": True}, seed=3,
        extra_body={"aggregation": "majority_vote", "answer_regex": "(.)", "ignore_eos": True})
    content = {i: "" for i in range(4)}
    finish, usage, rami = {}, None, None
    for chunk in stream:
        for c in chunk.choices:
            if c.delta.content:
                content[c.index] += c.delta.content
            if c.finish_reason:
                finish[c.index] = c.finish_reason
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.model_extra.get("rami"):
            rami = chunk.model_extra["rami"]["jobs"][0]
    assert finish == {i: "length" for i in range(4)}, finish
    assert usage is not None and usage.completion_tokens == 64, usage
    assert rami is not None and sum(v["count"] for v in rami["votes"]) == 4, rami
    # The streamed text is the branch's whole text: the same request unstreamed agrees.
    whole = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is 2+2?"}], n=4,
        max_tokens=16, seed=3, extra_body={"ignore_eos": True})
    assert [c.message.content for c in whole.choices] == [content[i] for i in range(4)]
    print("streamed chat n=4:", json.dumps({"content": content, "votes": rami["votes"],
                                           "answer": rami["answer"]}, ensure_ascii=False))


def test_chat_logprobs() -> None:
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       max_tokens=4, logprobs=True, top_logprobs=3,
                                       extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 4 and all(len(t.top_logprobs) == 3 for t in content), content


def expect_error(status: int, needle: str, **kwargs) -> None:
    try:
        client.completions.create(**{"model": MODEL, "prompt": "x", "max_tokens": 2, **kwargs})
    except openai.APIStatusError as e:
        assert e.status_code == status, (e.status_code, e.message)
        assert needle in e.message, (needle, e.message)
        return
    raise AssertionError(f"no error for {kwargs}")


def test_errors() -> None:
    expect_error(400, "temperature", temperature=-1)           # a bad value, named as sent
    expect_error(400, "frequency_penalty", frequency_penalty=0.5)  # unsupported, never ignored
    expect_error(400, "suffix", suffix="tail")
    expect_error(400, "bogus_field: unknown field", extra_body={"bogus_field": 1})
    expect_error(404, "does not exist", model="gpt-4")
    expect_error(400, "n: must be in [1, ", n=100000)
    try:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                       tools=[{"type": "function",
                                               "function": {"name": "f", "parameters": {}}}])
        raise AssertionError("tools accepted")
    except openai.BadRequestError as e:
        assert "tools" in e.message, e.message


def test_disconnect_aborts() -> None:
    before = metric(metrics(), "rami_requests_total", 'outcome="aborted"')
    stream = client.completions.create(model=MODEL, prompt="long", max_tokens=480, stream=True,
                                       extra_body={"ignore_eos": True})
    it = iter(stream)
    next(it)
    next(it)
    stream.close()  # the client goes away mid-stream
    deadline = time.time() + 10
    while metric(metrics(), "rami_requests_total", 'outcome="aborted"') == before:
        assert time.time() < deadline, "the job of a closed stream was not aborted"
        time.sleep(0.1)


async def more_streams_than_the_default_pool(count: int) -> None:
    """`count` concurrent streams (cpp-httplib's default pool has 8 threads here): every stream
    has its first token before any stream ends, so none waited for another's thread."""
    aclient = openai.AsyncOpenAI(base_url=BASE + "/v1", api_key="unused", max_retries=0)
    first, ended = [], []

    async def one(i: int) -> None:
        stream = await aclient.completions.create(model=MODEL, prompt=f"s{i}", max_tokens=480,
                                                  stream=True, extra_body={"ignore_eos": True})
        got_first = False
        async for chunk in stream:
            if not got_first and chunk.choices and chunk.choices[0].text:
                got_first = True
                first.append(time.monotonic())
            if chunk.choices and chunk.choices[0].finish_reason:
                ended.append(time.monotonic())

    await asyncio.gather(*(one(i) for i in range(count)))
    await aclient.close()
    assert len(first) == count and len(ended) == count, (len(first), len(ended))
    assert max(first) < min(ended), ("a stream waited for another stream's connection thread",
                                     sorted(first), sorted(ended))


def test_concurrent_streams() -> None:
    asyncio.run(more_streams_than_the_default_pool(12))


def test_curl() -> None:
    body = json.dumps({"model": MODEL, "prompt": "hi", "max_tokens": 3, "stream": True})
    out = subprocess.run(["curl", "-sN", "-H", "Content-Type: application/json", "-d", body,
                          BASE + "/v1/completions"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    events = [line[6:] for line in out.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]", out
    assert all("choices" in json.loads(e) for e in events[:-1]), out
    bad = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", "{",
                          BASE + "/v1/completions"], capture_output=True, text=True, timeout=30)
    assert bad.stdout == "400", bad.stdout


def test_metrics_promtool_and_values() -> None:
    before = metrics()
    client.completions.create(model=MODEL, prompt="count me", max_tokens=5, n=3,
                              extra_body={"ignore_eos": True})
    after = metrics()
    check = subprocess.run(["promtool", "check", "metrics"], input=after, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    finished = 'outcome="finished"'
    assert metric(after, "rami_requests_total", finished) == \
        metric(before, "rami_requests_total", finished) + 1
    assert metric(after, "rami_generated_tokens_total") == \
        metric(before, "rami_generated_tokens_total") + 15
    assert metric(after, "rami_branches_finished_total") == \
        metric(before, "rami_branches_finished_total") + 3
    assert metric(after, "rami_request_duration_seconds_count") > 0
    assert metric(after, "rami_worker_groups", 'state="serving"') == 1
    excerpt = [line for line in after.splitlines()
               if line.startswith(("rami_requests_total", "rami_generated_tokens_total",
                                   "rami_kv_pages", "rami_time_to_first_token_seconds_count",
                                   "rami_worker_groups{state=\"serving\"}"))]
    print("/metrics excerpt:\n" + "\n".join(excerpt))


def test_prefix_cache_cached_tokens() -> None:
    # A shared system prompt and a worked turn before each question: the second chat copies
    # them (and the first chat's whole prompt is kept too) instead of prefilling them.
    head = [{"role": "system", "content": "You answer with one letter. " * 4},
            {"role": "user", "content": "First letter of the alphabet?"},
            {"role": "assistant", "content": "a"}]
    before = metrics()
    args = dict(model=MODEL, max_tokens=4, n=2, seed=3, extra_body={"ignore_eos": True,
                                                                    "cache_salt": "openai test"})
    first = client.chat.completions.create(messages=head + [{"role": "user", "content": "Last?"}],
                                           **args)
    assert first.usage.prompt_tokens_details.cached_tokens == 0, first.usage
    second = client.chat.completions.create(
        messages=head + [{"role": "user", "content": "And the second one?"}], **args)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert 0 < cached < second.usage.prompt_tokens, second.usage
    # The same chat again: the whole prompt is cached.
    again = client.chat.completions.create(messages=head + [{"role": "user", "content": "Last?"}],
                                           **args)
    assert again.usage.prompt_tokens_details.cached_tokens == again.usage.prompt_tokens
    assert [c.message.content for c in again.choices] == \
        [c.message.content for c in first.choices]
    # Another salt sees none of it; a request may also skip the cache.
    other = dict(args, extra_body={"ignore_eos": True, "cache_salt": "someone else"})
    r = client.chat.completions.create(messages=head + [{"role": "user", "content": "Last?"}],
                                       **other)
    assert r.usage.prompt_tokens_details.cached_tokens == 0, r.usage
    skip = dict(args, extra_body={"ignore_eos": True, "cache_salt": "openai test",
                                  "skip_prefix_cache": True})
    r = client.chat.completions.create(messages=head + [{"role": "user", "content": "Last?"}],
                                       **skip)
    assert r.usage.prompt_tokens_details.cached_tokens == 0, r.usage
    after = metrics()
    assert metric(after, "rami_prefix_cache_hits_total") == \
        metric(before, "rami_prefix_cache_hits_total") + 2
    assert metric(after, "rami_prefix_cache_cached_tokens_total") == \
        metric(before, "rami_prefix_cache_cached_tokens_total") + cached + again.usage.prompt_tokens


def test_grafana_dashboard_uses_exported_series() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "deploy/grafana/rami-dashboard.json")) as f:
        dashboard = json.load(f)
    exported = set(re.findall(r"^# TYPE (\S+) ", metrics(), re.MULTILINE))
    used = {re.sub(r"_(bucket|sum|count)$", "", name)
            for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\brami_[a-z_]+", target["expr"])}
    assert used and used <= exported, used - exported


def main() -> int:
    tests = [v for k, v in globals().items() if k.startswith("test_")]
    failed = 0
    for test in tests:
        start = time.time()
        try:
            test()
            print(f"PASS {test.__name__} ({time.time() - start:.1f} s)")
        except Exception:  # noqa: BLE001 — report every failing test, then fail
            failed += 1
            print(f"FAIL {test.__name__}")
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
