"""Building frozen claim values cheaply once the decoder has validated every field ("drafts").

Why: the generated ``__init__`` of a frozen dataclass stores each field through
``object.__setattr__`` (a call per field), which dominated the cost of building the claims of a
token (31 fields for :class:`~edgetrust.attest.eat.EatClaims`). The decoders of this package
check every value before building anything, so they can skip that cost.

How (the "class swap"): for a frozen, slotted dataclass ``C``, :func:`draft_of` makes its *draft*,
a plain mutable dataclass with the same fields in the same order and therefore the same
``__slots__``, whose generated ``__init__`` uses ordinary attribute stores. A decoder builds the
draft and then turns it into a ``C`` by assigning ``__class__``::

    built = _CDraft(a, b, c)                   # positional, in field order
    set_class(built, "__class__", C)           # now an ordinary, frozen C

Python allows ``__class__`` assignment between two heap classes with the same slot layout;
:func:`draft_of` tries it once, at import, so a layout change fails loudly there rather than on
the verify path. The result is indistinguishable from ``C(...)``: same type, equality, hash,
repr, pickling, and frozen (assigning a field raises ``FrozenInstanceError``).

Measured (CPython 3.11+, 31 fields): draft + swap ~0.6 us; ``object.__new__`` + one slot
descriptor ``__set__`` per field ~3.2 us; ``EatClaims(**fields)`` ~6.2 us. The two statements
stay inline at each call site (no helper function) because a call per built object is
measurable on the verify path.

Rules for callers: only for values every field of which is already validated; pass every field
(a draft's fields all default to None, ``default_factory`` is not applied); the frozen class must
have no ``__post_init__`` (it would not run).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

__all__ = ["draft_of", "set_class"]

#: ``set_class(draft, "__class__", cls)`` turns a draft into an instance of ``cls``. (It is
#: ``object.__setattr__``: the frozen class's own ``__setattr__`` refuses every assignment.)
set_class: Final = object.__setattr__


def draft_of(cls: type) -> Any:
    """The mutable twin of the frozen slotted dataclass ``cls``: the same fields, in order, each
    defaulting to None (positional or keyword; the caller passes every field without one)."""
    if getattr(cls, "__post_init__", None) is not None:  # pragma: no cover - see the rules above
        raise TypeError(f"{cls.__name__} has a __post_init__, which a draft would skip")
    names = [f.name for f in dataclasses.fields(cls)]
    draft = dataclasses.make_dataclass(
        f"_{cls.__name__}Draft",
        [(name, Any, dataclasses.field(default=None)) for name in names],
        slots=True,
    )
    if draft.__slots__ != cls.__slots__:  # type: ignore[attr-defined]
        raise TypeError(f"the draft of {cls.__name__} does not have its slots")  # pragma: no cover
    set_class(draft(*names), "__class__", cls)  # TypeError here if the layouts differ
    return draft
