"""Tests the Python client against a running deployment (see tests/integration/CMakeLists.txt:
deploy/run-local.sh starts it and passes the coordinator's port file)."""
import re
import sys

import grpc

from rami_client import Client, JobFailed


def main(port_file: str) -> None:
    client = Client("127.0.0.1:" + open(port_file).read().strip(), timeout=120)
    texts = {}

    def collect(event):
        if event.HasField("branch_finished"):
            texts[event.branch_finished.branch] = event.branch_finished.text

    result = client.generate("Python says hi", n=4, max_tokens=16, seed=3,
                             aggregation="majority_vote", answer_regex=r"([a-z])[^a-z]*$",
                             stream_deltas=True, on_event=collect)
    assert len(result.branches) == 4, result
    assert sum(v.count for v in result.votes) == 4, result.votes
    expected = {}
    for text in texts.values():
        m = re.search(r"([a-z])[^a-z]*$", text)
        answer = m.group(1) if m else ""
        expected[answer] = expected.get(answer, 0) + 1
    assert {v.answer: v.count for v in result.votes} == expected, (result.votes, expected)
    assert result.usage.generated_tokens == 64, result.usage
    try:
        client.generate("x", n=100000)
        raise AssertionError("n=100000 was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    assert client.server_info().max_n == 256
    print("python client: OK, answer", repr(result.answer))


if __name__ == "__main__":
    main(sys.argv[1])
