"""Client: the sync API of rami.v1.Inference over one gRPC channel.

Every call raises RamiError (a grpc.RpcError with code() and details()) when the server
refuses it; a job that fails raises JobFailed. Generate's keyword arguments are
request.generate_request's."""
from typing import Callable, Iterable, Iterator, List, Optional

import grpc
from google.protobuf.message import Message

from rami_client import pb
from rami_client.auth import call_metadata
from rami_client.errors import from_rpc_error
from rami_client.events import StreamState
from rami_client.request import generate_request, tokenize_request


class JobStream(StreamState):
    """One job's events in order: Accepted, Delta / BranchFinished / Progress as branches run,
    and the Result last. job_id is known from the first event on (to abort the job or a
    branch); cancel() ends the stream and so the job."""

    def __iter__(self) -> Iterator[Message]:
        for event in self._events():
            payload = self._take(event)
            if payload is not None:
                yield payload
        self._finish()

    def _events(self) -> Iterator["pb.GenerateEvent"]:
        try:
            yield from self._call
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None


class Client:
    """timeout: seconds for each call, a whole job's stream included (None: no limit).
    api_key: the coordinator's API key, sent with every call (None: $RAMI_API_KEY; "" or
    unset: none)."""

    def __init__(self, address: str = "127.0.0.1:50051", timeout: Optional[float] = None,
                 api_key: Optional[str] = None):
        self._channel = grpc.insecure_channel(address)
        self._stub = pb.grpc_stubs.InferenceStub(self._channel)
        self._timeout = timeout
        self._metadata = call_metadata(api_key)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def stream(self, prompt: Optional[str] = None, **request) -> JobStream:
        """Starts a job; iterate the returned stream for its events."""
        return JobStream(self._stub.Generate(generate_request(prompt, **request),
                                             timeout=self._timeout,
                                             metadata=self._metadata))

    def run(self, prompt: Optional[str] = None, *,
            on_event: Optional[Callable[[Message], None]] = None, **request) -> "pb.Result":
        """Runs a job to its Result, calling on_event with each event (the Result included)."""
        stream = self.stream(prompt, **request)
        for event in stream:
            if on_event is not None:
                on_event(event)
        return stream.result

    def generate(self, prompt: Optional[str] = None, *,
                 on_event: Optional[Callable[["pb.GenerateEvent"], None]] = None,
                 **request) -> "pb.Result":
        """The first client's call, kept for its callers: run(), but on_event receives whole
        pb.GenerateEvents (job_id and the oneof)."""
        stream = self.stream(prompt, **request)
        for _ in stream:
            if on_event is not None:
                on_event(stream.event)
        return stream.result

    def abort(self, job_id: str, branch: Optional[int] = None) -> None:
        """Stops a job (its stream ends with JobFailed, code ABORTED) or one branch of it (the
        branch finishes with reason ABORTED). Aborting a finished job succeeds; an unknown job
        (or another API key's) raises RamiError NOT_FOUND."""
        self._call(self._stub.Abort, pb.AbortRequest(job_id=job_id, branch=branch))

    def get_job(self, job_id: str) -> "pb.GetJobResponse":
        return self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id))

    def list_models(self) -> List["pb.ModelInfo"]:
        return list(self._call(self._stub.ListModels, pb.ListModelsRequest()).models)

    def server_info(self) -> "pb.ServerInfo":
        return self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())

    def tokenize(self, prompt: Optional[str] = None, **request) -> "pb.TokenizeResponse":
        """The token ids a job's prompt or messages would become (request.tokenize_request)."""
        return self._call(self._stub.Tokenize, tokenize_request(prompt, **request))

    def detokenize(self, token_ids: Iterable[int], model: Optional[str] = None) -> str:
        request = pb.DetokenizeRequest(token_ids=token_ids, model=model)
        return self._call(self._stub.Detokenize, request).text

    def _call(self, method, request):
        try:
            return method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
