"""API keys on the HTTP API (the official `openai` package, urllib) and in the `rami` CLI.

Run by api_keys_http_test.sh inside a local deployment with its keys file: RAMI_HTTP is the
HTTP API, RAMI_SERVER the gRPC API, RAMI_CLI the `rami` binary, RAMI_OPS_KEY the admin key.
    python api_keys_http_test.py
"""
import json
import os
import subprocess
import sys
import threading
import traceback
import urllib.error
import urllib.request

import openai

BASE = os.environ["RAMI_HTTP"]
SERVER = os.environ["RAMI_SERVER"]
CLI = os.environ["RAMI_CLI"]
OPS = os.environ["RAMI_OPS_KEY"]
ALICE = "alice-key-0123456789abcdef"
SLOW = "slow-key-0123456789abcdef"


def client(key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=BASE + "/v1", api_key=key, max_retries=0)


def get(path: str, key: str = "") -> tuple:
    """(status, body) of GET path, with the key when there is one."""
    request = urllib.request.Request(BASE + path)
    if key:
        request.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_wrong_key_is_401_right_key_works() -> None:
    for key in ("wrong-key-0123456789abcdef", ALICE[:-1]):
        try:
            client(key).completions.create(model="qwen3_dms", prompt="hi", max_tokens=2)
            raise AssertionError(f"key {key!r} was accepted")
        except openai.AuthenticationError as e:
            assert e.status_code == 401, e
            assert e.body["message"] == "invalid API key", e.body
            assert e.body["code"] == "UNAUTHENTICATED", e.body
        try:
            client(key).models.list()
            raise AssertionError(f"key {key!r} listed the models")
        except openai.AuthenticationError:
            pass
    r = client(ALICE).completions.create(model="qwen3_dms", prompt="hi", max_tokens=2)
    assert r.usage.completion_tokens == 2, r
    job_id = r.model_extra["rami"]["jobs"][0]["job_id"]
    assert len(job_id) == len("job-") + 32, job_id


def test_missing_key_is_401_everywhere_but_health() -> None:
    for path in ("/v1/models", "/metrics"):
        status, body = get(path)
        assert status == 401, (path, status, body)
        assert json.loads(body)["error"]["type"] == "AuthenticationError", body
    request = urllib.request.Request(BASE + "/tokenize", data=b'{"prompt": "hi"}',
                                     headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("/tokenize without a key")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e
    assert get("/health")[0] == 200


def test_metrics_for_admins_only() -> None:
    status, body = get("/metrics", ALICE)
    assert status == 403 and "needs an admin key" in body, (status, body)
    status, body = get("/metrics", OPS)
    assert status == 200 and "rami_requests_total" in body, (status, body[:200])


def test_max_branches_and_max_jobs_are_429() -> None:
    try:
        client(ALICE).completions.create(model="qwen3_dms", prompt="hi", max_tokens=2, n=8)
        raise AssertionError("n=8 over max_branches 4 was accepted")
    except openai.RateLimitError as e:
        assert 'api key "alice": max_branches 4 reached' in e.body["message"], e.body
    # A batch of two prompts is two jobs: over max_jobs 1, and nothing of it runs.
    try:
        client(ALICE).completions.create(model="qwen3_dms", prompt=["a", "b"], max_tokens=2)
        raise AssertionError("two jobs over max_jobs 1 were accepted")
    except openai.RateLimitError as e:
        assert 'api key "alice": max_jobs 1 reached' in e.body["message"], e.body
    # One streamed job holds the slot; a second request waits for nothing and gets 429. The
    # held job lasts well under a second on the tiny model, so on a loaded machine it may end
    # before the second request lands: a few tries, and at least one must see the 429.
    alice, refused = client(ALICE), False
    for _ in range(5):
        stream = alice.completions.create(model="qwen3_dms", prompt="long", max_tokens=400,
                                          stream=True, extra_body={"ignore_eos": True})
        first = next(iter(stream))
        assert first.choices or first.model_extra, first
        try:
            alice.completions.create(model="qwen3_dms", prompt="hi", max_tokens=2)
        except openai.RateLimitError as e:
            assert e.status_code == 429 and "max_jobs 1" in e.body["message"], e.body
            refused = True
        if refused:
            break
        stream.close()
    if not refused:
        raise AssertionError("a second job over max_jobs 1 was accepted while one streamed")
    stream.close()  # the client leaves: its job is aborted, the slot frees
    for _ in range(100):
        try:
            client(ALICE).completions.create(model="qwen3_dms", prompt="hi", max_tokens=2)
            return
        except openai.RateLimitError:
            threading.Event().wait(0.1)
    raise AssertionError("alice's slot never freed after the stream closed")


def test_rps_is_429() -> None:
    slow = client(SLOW)
    slow.models.list()
    try:
        slow.models.list()
        raise AssertionError("a second request within a second at rps 1 was accepted")
    except openai.RateLimitError as e:
        assert 'api key "slow": rps 1 reached' in e.body["message"], e.body


def cli(*args: str, key_env: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("RAMI_API_KEY", None)
    if key_env:
        env["RAMI_API_KEY"] = key_env
    return subprocess.run([CLI, *args, "--server=" + SERVER], capture_output=True, text=True,
                          timeout=60, env=env)


def test_cli_api_key_flag_and_env() -> None:
    none = cli("info")
    assert none.returncode == 1 and "missing API key" in none.stderr, none
    wrong = cli("info", "--api_key=wrong-key-0123456789abcdef")
    assert wrong.returncode == 1 and "invalid API key" in wrong.stderr, wrong
    admin = cli("info", key_env=OPS)  # from RAMI_API_KEY
    assert admin.returncode == 0, admin
    info = json.loads(admin.stdout)
    assert info["groups"][0]["ranks"].startswith("127.0.0.1:"), info
    user = cli("info", "--api_key=" + ALICE, key_env=OPS)  # the flag wins over the environment
    assert user.returncode == 0, user
    info = json.loads(user.stdout)
    assert info["healthyWorkerGroups"] == 1 and "ranks" not in info["groups"][0], info
    job = cli("generate", "--n=2", "--max_tokens=4", "--json", "hi", key_env=ALICE)
    assert job.returncode == 0 and len(json.loads(job.stdout)["branches"]) == 2, job


def main() -> int:
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"PASS: {name}")
        except Exception:  # noqa: BLE001 (report every test)
            failed += 1
            print(f"FAIL: {name}")
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
