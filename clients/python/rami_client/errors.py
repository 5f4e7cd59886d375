"""The client's exceptions: a call the server refused (RamiError) or a job that failed
(JobFailed). Both are grpc.RpcError, so code written against the raw stubs still catches them,
and carry the status code and the server's message (which names the request field at fault)."""
import grpc

_STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


class RamiError(grpc.RpcError):
    """An RPC that ended with a non-OK status: code() and details() as on grpc's own errors."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class JobFailed(RamiError):
    """A job that ended with an Error event (aborted, deadline exceeded, its workers failed)."""

    def __init__(self, job_id: str, code: int, message: str, retryable: bool):
        status = _STATUS_BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
        super().__init__(status, message)
        self.job_id = job_id
        self.retryable = retryable  # the server says the same request may succeed if sent again


def from_rpc_error(error: grpc.RpcError) -> RamiError:
    """grpc's error of a call (sync or aio; both are grpc.Call) as a RamiError."""
    return RamiError(error.code(), error.details() or "")
