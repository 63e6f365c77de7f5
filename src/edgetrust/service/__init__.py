"""Service plumbing shared by the verifier (:mod:`edgetrust.onboarding`) and the inference agent
(:mod:`edgetrust.offload`): the gRPC server lifecycle (:mod:`edgetrust.service.grpc_server`) and
the Prometheus metrics endpoint (:mod:`edgetrust.service.metrics`).

It imports nothing of ours but :mod:`edgetrust.errors`, so both sides may use it without importing
each other.
"""
