"""gRPC reflection as older tools speak it: grpcio's reflection client and other tools know only v1alpha, which
hookwired serves beside v1 (issue 15)."""

from __future__ import annotations

import grpc

from harness import Kernel

# ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
LIST_SERVICES = b"\x3a\x00"


def test_reflection_v1alpha_lists_the_services(kernel: Kernel) -> None:
    target = kernel.endpoint.removeprefix("http://")
    for version in ("v1alpha", "v1"):
        with grpc.insecure_channel(target) as channel:
            call = channel.stream_stream(
                f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                request_serializer=lambda message: message,
                response_deserializer=lambda message: message,
            )
            answers = list(call(iter([LIST_SERVICES]), timeout=10))
        assert len(answers) == 1, version
        assert b"hookwire.v1.WebhookService" in answers[0], (version, answers[0])
