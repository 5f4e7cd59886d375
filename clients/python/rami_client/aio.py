"""AsyncClient: the asyncio API of rami.v1.Inference (grpc.aio), the same calls as Client.

Create it inside the running event loop (grpc.aio binds a channel to it):
    async with AsyncClient("127.0.0.1:50051") as client:
        result = await client.run("2+2=", n=4)
"""
from typing import AsyncIterator, Callable, Iterable, List, Optional

import grpc
from google.protobuf.message import Message

from rami_client import pb
from rami_client.auth import call_metadata
from rami_client.errors import from_rpc_error
from rami_client.events import StreamState
from rami_client.request import generate_request, tokenize_request


class AsyncJobStream(StreamState):
    """JobStream's async twin: `async for event in stream`."""

    async def __aiter__(self) -> AsyncIterator[Message]:
        async for event in self._events():
            payload = self._take(event)
            if payload is not None:
                yield payload
        self._finish()

    async def _events(self) -> AsyncIterator["pb.GenerateEvent"]:
        try:
            async for event in self._call:
                yield event
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None


class AsyncClient:
    """timeout: seconds for each call, a whole job's stream included (None: no limit).
    api_key: the coordinator's API key, sent with every call (None: $RAMI_API_KEY; "" or
    unset: none)."""

    def __init__(self, address: str = "127.0.0.1:50051", timeout: Optional[float] = None,
                 api_key: Optional[str] = None):
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = pb.grpc_stubs.InferenceStub(self._channel)
        self._timeout = timeout
        self._metadata = call_metadata(api_key)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def stream(self, prompt: Optional[str] = None, **request) -> AsyncJobStream:
        """Starts a job; `async for` over the returned stream for its events."""
        return AsyncJobStream(self._stub.Generate(generate_request(prompt, **request),
                                                  timeout=self._timeout,
                                                  metadata=self._metadata))

    async def run(self, prompt: Optional[str] = None, *,
                  on_event: Optional[Callable[[Message], None]] = None,
                  **request) -> "pb.Result":
        """Runs a job to its Result, calling on_event with each event (the Result included)."""
        stream = self.stream(prompt, **request)
        async for event in stream:
            if on_event is not None:
                on_event(event)
        return stream.result

    async def abort(self, job_id: str, branch: Optional[int] = None) -> None:
        await self._call(self._stub.Abort, pb.AbortRequest(job_id=job_id, branch=branch))

    async def get_job(self, job_id: str) -> "pb.GetJobResponse":
        return await self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id))

    async def list_models(self) -> List["pb.ModelInfo"]:
        return list((await self._call(self._stub.ListModels, pb.ListModelsRequest())).models)

    async def server_info(self) -> "pb.ServerInfo":
        return await self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())

    async def tokenize(self, prompt: Optional[str] = None, **request) -> "pb.TokenizeResponse":
        return await self._call(self._stub.Tokenize, tokenize_request(prompt, **request))

    async def detokenize(self, token_ids: Iterable[int], model: Optional[str] = None) -> str:
        request = pb.DetokenizeRequest(token_ids=token_ids, model=model)
        return (await self._call(self._stub.Detokenize, request)).text

    async def _call(self, method, request):
        try:
            return await method(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
