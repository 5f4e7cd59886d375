"""Tests the installed rami_client: requests built offline, then the sync and asyncio clients
against a local deployment of the tiny test model (tests/integration/python_client_test.sh
installs the package into a fresh venv and starts the deployment with API keys: the clients
take theirs from RAMI_API_KEY, OTHER_KEY is another key's).
    RAMI_API_KEY=... python python_client_test.py PORT_FILE OTHER_KEY
"""
import asyncio
import datetime
import os
import re
import sys
import time

import grpc

from rami_client import (Accepted, AsyncClient, BranchFinished, Client, Delta, JobFailed,
                         RamiError, Result, generate_request, pb)

# The tiny model writes noise: a branch's answer is its last lowercase letter.
LAST_LETTER = r"([a-z])[^a-z]*$"


def check_requests() -> None:
    """Every keyword argument lands in its proto field (those the server does not answer yet
    included: prompt_logprobs, score_only)."""
    expected = pb.GenerateRequest(
        prompt="p", model="m", n=4, logprobs=2, priority=3, stream_deltas=True, prompt_logprobs=0,
        sampling=pb.Sampling(temperature=0.5, top_p=0.9, top_k=40, min_p=0.05, seed=7),
        stopping=pb.Stopping(max_tokens=9, stop=["\n"], stop_token_ids=[5], ignore_eos=True),
        aggregation=pb.Aggregation(
            policy=pb.WEIGHTED_VOTE, extractor=pb.AnswerExtractor(regex="(x)"),
            pruning=pb.EarlyPruning(enabled=True, warmup_branches=2, window_tokens=8,
                                    percentile=25.0, confidence_top_k=3,
                                    stop_when_decided=True)),
        chat_template_kwargs={"enable_thinking": "false", "name": '"x"'})
    expected.deadline.FromSeconds(2_000_000_000)
    got = generate_request(
        "p", model="m", n=4, logprobs=2, priority=3, stream_deltas=True, prompt_logprobs=0,
        temperature=0.5, top_p=0.9, top_k=40, min_p=0.05, seed=7, max_tokens=9, stop="\n",
        stop_token_ids=[5], ignore_eos=True, aggregation="weighted_vote", answer_regex="(x)",
        pruning=dict(warmup_branches=2, window_tokens=8, percentile=25.0, confidence_top_k=3,
                     stop_when_decided=True),
        chat_template_kwargs={"enable_thinking": False, "name": '"x"'},
        deadline=datetime.datetime.fromtimestamp(2_000_000_000, datetime.timezone.utc))
    assert got == expected, got
    scoring = generate_request(messages=[{"role": "user", "content": "hi"}], prompt_logprobs=1,
                               score_only=True)
    assert scoring.score_only and scoring.messages.messages[0].content == "hi"
    assert not generate_request(token_ids=[1]).sampling.HasField("temperature")  # server default
    for bad in (dict(prompt="a", token_ids=[1]), dict(n="4"), dict(deadline="soon")):
        try:
            generate_request(**bad)
            raise AssertionError(f"accepted {bad}")
        except TypeError:
            pass


def check_streamed_best_of_4(client: Client) -> str:
    """Events in order, Deltas adding up to each branch's text, votes matching the branches."""
    stream = client.stream("Python says hi", n=4, max_tokens=16, ignore_eos=True, seed=3,
                           aggregation="majority_vote", answer_regex=LAST_LETTER,
                           stream_deltas=True)
    events = list(stream)
    assert isinstance(events[0], Accepted) and events[0].n == 4, events[0]
    assert isinstance(events[-1], Result), events[-1]
    assert re.fullmatch("job-[0-9a-f]{32}", stream.job_id), stream.job_id
    texts, finished = {}, {}
    for e in events:
        if isinstance(e, Delta):
            texts[e.branch] = texts.get(e.branch, "") + e.text
        elif isinstance(e, BranchFinished):
            finished[e.branch] = e
    assert sorted(finished) == [0, 1, 2, 3], finished
    votes = {}
    for branch, f in finished.items():
        assert texts[branch] == f.text, (branch, texts[branch], f.text)
        m = re.search(LAST_LETTER, f.text)
        assert f.answer == (m.group(1) if m else ""), (f.answer, f.text)
        votes[f.answer] = votes.get(f.answer, 0) + 1
    result = stream.result
    assert {v.answer: v.count for v in result.votes} == votes, (result.votes, votes)
    assert {b.branch: b.answer for b in result.branches} == \
        {b: f.answer for b, f in finished.items()}
    assert result.usage.generated_tokens == 64, result.usage
    job = client.get_job(stream.job_id)
    assert job.state == pb.GetJobResponse.FINISHED and job.result.answer == result.answer, job
    return result.answer


def check_prefix_cache(client: Client) -> None:
    """The prefix-cache fields reach the server: a boundary is cached and a second prompt
    sharing it reports the cached tokens; another salt or skip_prefix_cache sees none."""
    shared = list(range(40, 70))
    args = dict(n=1, max_tokens=2, ignore_eos=True, cache_salt="python client")
    first = client.run(token_ids=shared + [1, 2, 3], cache_boundaries=[30], **args)
    assert first.usage.cached_prompt_tokens == 0, first.usage
    second = client.run(token_ids=shared + [4, 5], cache_boundaries=[30], **args)
    assert second.usage.cached_prompt_tokens == 30, second.usage
    other = dict(args, cache_salt="another")
    assert client.run(token_ids=shared + [4, 5], **other).usage.cached_prompt_tokens == 0
    skipped = client.run(token_ids=shared + [4, 5], skip_prefix_cache=True, **args)
    assert skipped.usage.cached_prompt_tokens == 0, skipped.usage
    info = client.server_info()
    assert info.prefix_cache.enabled and info.prefix_cache.hits >= 1, info.prefix_cache


def check_run(client: Client) -> None:
    """run() to a Result, with sampling and logprobs reaching the server; the first client's
    generate() still works."""
    deltas = []
    result = client.run(token_ids=[72, 105, 33], n=2, max_tokens=8, ignore_eos=True, top_k=20,
                        min_p=0.01, temperature=0.8, logprobs=2, stream_deltas=True,
                        on_event=lambda e: deltas.append(e) if isinstance(e, Delta) else None)
    assert len(result.branches) == 2 and result.usage.prompt_tokens == 3, result
    assert sum(len(d.token_ids) for d in deltas) == 16, deltas
    for d in deltas:
        assert len(d.logprobs) == len(d.token_ids), d
        assert all(len(lp.top) == 2 for lp in d.logprobs), d
    raw = []
    legacy = client.generate("x", n=2, max_tokens=4, aggregation="none", on_event=raw.append)
    assert raw[0].HasField("accepted") and raw[-1].result == legacy, raw


def check_aborts(client: Client) -> None:
    """Long jobs (64 x 480 tokens, seconds): one branch aborted once it runs, then the job;
    a stream cancelled."""
    stream = client.stream("abort me", n=64, max_tokens=480, ignore_eos=True, stream_deltas=True)
    branch_aborted = False
    try:
        for e in stream:
            if isinstance(e, Delta) and not branch_aborted:
                client.abort(stream.job_id, branch=1)
                branch_aborted = True
            if isinstance(e, BranchFinished) and e.branch == 1:
                assert e.reason == pb.ABORTED, e
                client.abort(stream.job_id)
        raise AssertionError("the aborted job ended with a Result")
    except JobFailed as e:
        assert e.code() == grpc.StatusCode.ABORTED and e.job_id == stream.job_id, e
    assert client.get_job(stream.job_id).state == pb.GetJobResponse.ABORTED
    client.abort(stream.job_id)  # aborting a finished job succeeds
    # Cancelling the stream aborts the job too (the server notices within 200 ms).
    stream = client.stream("cancel me", n=64, max_tokens=480, ignore_eos=True)
    try:
        for _ in stream:
            stream.cancel()
        raise AssertionError("the cancelled stream ended with a Result")
    except RamiError as e:
        assert e.code() == grpc.StatusCode.CANCELLED, e
    deadline = time.monotonic() + 10
    while client.get_job(stream.job_id).state != pb.GetJobResponse.ABORTED:
        assert time.monotonic() < deadline, client.get_job(stream.job_id)
        time.sleep(0.05)


def check_info_and_errors(client: Client) -> None:
    info = client.server_info()
    assert info.max_n == 256 and info.healthy_worker_groups == 1, info
    models = client.list_models()
    assert len(models) == 1 and models[0].vocab_size == 256, models
    for call, code, field in ((lambda: client.run("x", n=100000), "INVALID_ARGUMENT", "n"),
                              (lambda: client.get_job("job-none"), "NOT_FOUND", "job_id")):
        try:
            call()
            raise AssertionError(f"no {code}")
        except RamiError as e:  # also a grpc.RpcError, as the first client raised
            assert isinstance(e, grpc.RpcError) and e.code().name == code, e
            assert e.details().startswith(field + ":"), e.details()


def check_tokenize(client: Client) -> None:
    try:
        tokens = client.tokenize("hello")
    except RamiError as e:
        if e.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise
        print("python client: Tokenize/Detokenize: the server does not implement them, skipped")
        return
    assert tokens.count == len(tokens.token_ids) > 0 and tokens.max_context == 512, tokens
    assert "hello" in client.detokenize(tokens.token_ids)


async def check_async(address: str) -> None:
    """Two jobs at once on one channel: their streams overlap in time, both complete."""
    async with AsyncClient(address, timeout=120) as client:
        spans = {}

        async def job(name: str, streamed: bool) -> pb.Result:
            seen = {}  # event type -> when it came

            def note(event) -> None:
                seen[type(event)] = time.monotonic()

            request = dict(n=4, max_tokens=300, ignore_eos=True)
            if streamed:
                stream = client.stream(name, stream_deltas=True, **request)
                async for event in stream:
                    note(event)
                result = stream.result
            else:
                result = await client.run(name, on_event=note, **request)
            spans[name] = (seen[Accepted], seen[Result])
            return result

        results = await asyncio.gather(job("streamed", True), job("run", False))
        assert all(r.usage.generated_tokens == 1200 for r in results), results
        (a0, a1), (b0, b1) = spans.values()
        assert max(a0, b0) < min(a1, b1), spans  # both accepted before either finished
        assert (await client.server_info()).max_n == 256
        try:
            await client.run("x", n=100000)
            raise AssertionError("n=100000 was accepted")
        except RamiError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e


def expect_code(call, code: grpc.StatusCode) -> RamiError:
    try:
        call()
    except RamiError as e:
        assert e.code() == code, e
        return e
    raise AssertionError(f"no {code}")


def check_api_keys(client: Client, address: str, other_key: str) -> None:
    """The key from RAMI_API_KEY or api_key=; without a known key nothing answers; another
    key's jobs are unknown to it."""
    assert os.environ.get("RAMI_API_KEY"), "the test runs with RAMI_API_KEY set"
    for key in ("", "wrong-key-0123456789abcdef"):  # "": no key at all, whatever the env says
        with Client(address, timeout=30, api_key=key) as anonymous:
            e = expect_code(anonymous.list_models, grpc.StatusCode.UNAUTHENTICATED)
            assert "API key" in e.details(), e.details()
            expect_code(lambda: anonymous.run("x", n=1, max_tokens=2),
                        grpc.StatusCode.UNAUTHENTICATED)
    stream = client.stream("mine", n=1, max_tokens=2)
    list(stream)
    with Client(address, timeout=30, api_key=other_key) as other:
        assert other.list_models()
        e = expect_code(lambda: other.get_job(stream.job_id), grpc.StatusCode.NOT_FOUND)
        assert e.details() == f'job_id: unknown job "{stream.job_id}"', e.details()
        expect_code(lambda: other.abort(stream.job_id), grpc.StatusCode.NOT_FOUND)
    assert client.get_job(stream.job_id).state == pb.GetJobResponse.FINISHED
    client.abort(stream.job_id)  # one's own finished job: OK
    expect_code(lambda: client.abort("job-" + "0" * 32), grpc.StatusCode.NOT_FOUND)


async def check_async_api_key(address: str) -> None:
    async with AsyncClient(address, timeout=30, api_key="wrong-key-0123456789abcdef") as client:
        try:
            await client.list_models()
            raise AssertionError("a wrong key listed the models")
        except RamiError as e:
            assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e


def main(port_file: str, other_key: str) -> None:
    check_requests()
    address = "127.0.0.1:" + open(port_file).read().strip()
    with Client(address, timeout=120) as client:
        answer = check_streamed_best_of_4(client)
        check_run(client)
        check_prefix_cache(client)
        check_aborts(client)
        check_info_and_errors(client)
        check_tokenize(client)
        check_api_keys(client, address, other_key)
    asyncio.run(check_async(address))
    asyncio.run(check_async_api_key(address))
    print("python client: OK, answer", repr(answer))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
