"""Evidence: DICE derivation, strict CBOR, COSE, EAT and PSA tokens, appraisal, EAR results."""
