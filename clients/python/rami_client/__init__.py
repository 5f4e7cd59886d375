"""A thin Python client of rami's public API (rami.v1.Inference).

    from rami_client import Client
    result = Client("127.0.0.1:50051").generate("What is 2+2?", n=8,
                                                 aggregation="majority_vote")
    print(result.answer, [(v.answer, v.count) for v in result.votes])

The generated stubs (rami/v1/inference_pb2*.py) come from the build: put
<build>/clients/python on PYTHONPATH next to this package.
"""
from rami_client.client import Client, JobFailed

__all__ = ["Client", "JobFailed"]
