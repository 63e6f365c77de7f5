"""X.509 for DICE: manufacturer CA, certificate builders, DICE extensions, chain validation.

Imports nothing of edgetrust but :mod:`edgetrust.errors`.
"""
