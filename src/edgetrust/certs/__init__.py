"""X.509 for DICE: manufacturer CA, certificate builders, DICE extensions, chain validation.

Modules: :mod:`.dice_ext` / :mod:`.open_dice_ext` (TcbInfo, MultiTcbInfo, Ueid, OpenDiceInput on
cryptography's declarative ASN.1, strict DER; schemas in :mod:`.dice_schema`), :mod:`.keys` (key
types, signature checks),
:mod:`.loading` (PEM/DER certificates, keys, trust anchors; 0600 key files), :mod:`.builders`
(DeviceID, alias, operational and server certificates), :mod:`.ca` (root + intermediate),
:mod:`.chain` (``validate_chain``), :mod:`.links` (the link-by-link rules), :mod:`.describe`
(a person's view of a certificate).

Imports nothing of edgetrust but :mod:`edgetrust.errors`.
"""
