"""Service plumbing shared by the verifier (:mod:`edgetrust.onboarding`) and the inference agent
(:mod:`edgetrust.offload`): the gRPC server lifecycle (:mod:`edgetrust.service.grpc_server`),
the Prometheus metrics endpoint (:mod:`edgetrust.service.metrics`), and what their configurations
share (:mod:`edgetrust.service.configuration`: the TOML file reader, ``HOST:PORT`` addresses, the
default trust domain).

It imports nothing of ours but :mod:`edgetrust.errors`, so both sides may use it without importing
each other.
"""
