"""A job's event stream, shared by the sync and asyncio streams: each GenerateEvent becomes its
payload (pb.Accepted, pb.Delta, pb.BranchFinished, pb.Progress, pb.Result — typed messages to
isinstance or match on), and the terminal Error event becomes a JobFailed exception."""
from typing import Optional

import grpc

from rami_client import pb
from rami_client.errors import JobFailed


class StreamState:
    """What a stream has seen: the job id (from its first event on), the last raw event, and
    the Result once it came."""

    def __init__(self, call):
        self._call = call
        self.job_id = ""
        self.event: Optional["pb.GenerateEvent"] = None
        self.result: Optional["pb.Result"] = None

    def cancel(self) -> None:
        """Ends the stream; the server aborts a job whose client went away."""
        self._call.cancel()

    def _take(self, event: "pb.GenerateEvent"):
        """The payload of one event, or None for a kind this client does not know (a newer
        server's); raises JobFailed for the Error event."""
        self.job_id = event.job_id
        self.event = event
        kind = event.WhichOneof("event")
        if kind == "error":
            raise JobFailed(event.job_id, event.error.code, event.error.message,
                            event.error.retryable)
        if kind == "result":
            self.result = event.result
        return None if kind is None else getattr(event, kind)

    def _finish(self) -> None:
        if self.result is None:
            raise JobFailed(self.job_id, grpc.StatusCode.UNAVAILABLE.value[0],
                            "the stream ended without a result", retryable=True)
