#!/usr/bin/env python3
"""grpc.health.v1 check of a rami server: exits 0 when it answers SERVING, 1 otherwise.

    deploy/grpc_health.py HOST:PORT [SERVICE] [--timeout SECONDS]

With RAMI_TLS_CA set (a PEM CA bundle), connects with TLS trusting it.
Uses only grpcio (Debian's python3-grpcio; no generated stubs): HealthCheckRequest and
HealthCheckResponse are one-field messages, encoded here by hand.
"""
import os
import sys

import grpc

SERVING = 1  # grpc.health.v1.HealthCheckResponse.ServingStatus


def encode_request(service: str) -> bytes:
    data = service.encode()
    return b"" if not data else b"\x0a" + bytes([len(data)]) + data  # field 1, length < 128


def decode_status(response: bytes) -> int:
    # HealthCheckResponse{status = 1 (varint)}: b"\x08<status>"; empty means UNKNOWN (0).
    return response[1] if len(response) >= 2 and response[0] == 0x08 else 0


def main(argv: list) -> int:
    timeout = 2.0
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = float(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    address, service = argv[1], argv[2] if len(argv) == 3 else ""
    ca = os.environ.get("RAMI_TLS_CA", "")
    if ca:
        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        channel = grpc.secure_channel(address, credentials)
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=None, response_deserializer=None)
        try:
            status = decode_status(check(encode_request(service), timeout=timeout))
        except grpc.RpcError as error:
            print(f"{address}: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    if status != SERVING:
        print(f"{address}: health status {status}, not SERVING", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
