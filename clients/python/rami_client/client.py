"""Client: streams one job's events and returns its Result."""
from typing import Callable, Iterable, Optional

import grpc

from rami.v1 import inference_pb2 as pb
from rami.v1 import inference_pb2_grpc as pb_grpc

_POLICIES = {
    "none": pb.NONE,
    "majority_vote": pb.MAJORITY_VOTE,
    "weighted_vote": pb.WEIGHTED_VOTE,
    "best_logprob": pb.BEST_LOGPROB,
}


class JobFailed(RuntimeError):
    """The job ended with an Error event (code, message, retryable)."""

    def __init__(self, error: "pb.Error"):
        super().__init__(f"job failed: {error.message} (code {error.code})")
        self.code = error.code
        self.retryable = error.retryable


class Client:
    def __init__(self, address: str, timeout: Optional[float] = None):
        self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.InferenceStub(self._channel)
        self._timeout = timeout

    def generate(self, prompt: Optional[str] = None, *, token_ids: Optional[Iterable[int]] = None,
                 messages: Optional[list] = None, n: int = 1, max_tokens: int = 0,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 aggregation: str = "none", answer_regex: str = "", stream_deltas: bool = False,
                 on_event: Optional[Callable[["pb.GenerateEvent"], None]] = None) -> "pb.Result":
        """Runs one job; calls on_event for every event; returns the Result or raises JobFailed
        (grpc.RpcError for requests the server rejects, e.g. INVALID_ARGUMENT)."""
        request = pb.GenerateRequest(n=n, stream_deltas=stream_deltas)
        if prompt is not None:
            request.prompt = prompt
        elif token_ids is not None:
            request.token_ids.ids.extend(token_ids)
        elif messages is not None:
            for m in messages:
                request.messages.messages.add(role=m["role"], content=m["content"])
        request.sampling.temperature = temperature
        request.sampling.top_p = top_p
        request.sampling.seed = seed
        request.stopping.max_tokens = max_tokens
        request.aggregation.policy = _POLICIES[aggregation]
        request.aggregation.extractor.regex = answer_regex
        for event in self._stub.Generate(request, timeout=self._timeout):
            if on_event is not None:
                on_event(event)
            if event.HasField("result"):
                return event.result
            if event.HasField("error"):
                raise JobFailed(event.error)
        raise JobFailed(pb.Error(code=14, message="stream ended without a result", retryable=True))

    def abort(self, job_id: str, branch: Optional[int] = None) -> None:
        request = pb.AbortRequest(job_id=job_id)
        if branch is not None:
            request.branch = branch
        self._stub.Abort(request, timeout=self._timeout)

    def server_info(self) -> "pb.ServerInfo":
        return self._stub.GetServerInfo(pb.GetServerInfoRequest(), timeout=self._timeout)
