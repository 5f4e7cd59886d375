"""The generated rami.v1 messages and stubs (made when the package is built; setup.py).

    from rami_client import pb
    pb.GenerateRequest(prompt="hi", n=4), pb.MAJORITY_VOTE, pb.FinishReason.Name(2)
"""
try:
    from rami_client._proto.rami.v1.inference_pb2 import *  # noqa: F401,F403 (the message types)
    from rami_client._proto.rami.v1 import inference_pb2_grpc as grpc_stubs
except ModuleNotFoundError as e:
    if not (e.name or "").startswith("rami_client._proto"):
        raise
    # A source checkout on PYTHONPATH: the stubs exist only in an installed package.
    raise ImportError("rami_client's stubs are generated when it is installed: "
                      "pip install clients/python") from e
