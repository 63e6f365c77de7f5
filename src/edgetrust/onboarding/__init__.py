"""Onboarding: factory provisioning, the device registry, nonces and the verifier service."""
