"""A Python client of rami's public API (rami.v1.Inference), sync and asyncio.

    from rami_client import Client
    with Client("127.0.0.1:50051") as client:
        result = client.run("What is 2+2?", n=8, aggregation="majority_vote")
        print(result.answer, [(v.answer, v.count) for v in result.votes])

Against a coordinator with API keys, pass api_key="..." (or set RAMI_API_KEY).
Install with `pip install clients/python` (the rami.v1 stubs are generated then).
"""
from rami_client import pb
from rami_client.aio import AsyncClient, AsyncJobStream
from rami_client.client import Client, JobStream
from rami_client.errors import JobFailed, RamiError
from rami_client.request import generate_request, tokenize_request

# The event types a stream yields.
Accepted, Delta, BranchFinished, Progress, Result = (
    pb.Accepted, pb.Delta, pb.BranchFinished, pb.Progress, pb.Result)

__all__ = ["AsyncClient", "AsyncJobStream", "Client", "JobStream", "JobFailed", "RamiError",
           "generate_request", "tokenize_request", "pb", "Accepted", "Delta", "BranchFinished",
           "Progress", "Result"]
