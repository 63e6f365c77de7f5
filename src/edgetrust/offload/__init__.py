"""Offload: inference runtime, the mTLS inference agent, and the local/remote client."""
