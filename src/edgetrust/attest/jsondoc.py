"""Strict reading of the project's JSON documents (reference values, factory configuration).

:func:`parse_json` refuses duplicate keys; :class:`JsonObject` reads one object field by field,
naming the path of the offending field in every :class:`~edgetrust.errors.ConfigError`.
"""

from __future__ import annotations

import json
from typing import Any

from edgetrust.errors import ConfigError, Error

__all__ = ["JsonObject", "parse_json"]


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ConfigError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def parse_json(text: str | bytes, what: str, *, error: type[Error] = ConfigError) -> object:
    """Decode ``text``: invalid JSON raises ``error``, duplicate keys ConfigError."""
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except Error:
        raise
    except (ValueError, RecursionError) as e:
        raise error(f"{what}: not valid JSON: {e}") from e


class JsonObject:
    """A JSON object being read, with the path of every field for error messages."""

    __slots__ = ("data", "path")

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        self.data: dict[str, Any] = data
        self.path = path

    def allow(self, *names: str) -> None:
        """Refuse any field not in ``names`` (``description`` is always free)."""
        for key in self.data:
            if key not in names and key != "description":
                raise ConfigError(f"{self.path}.{key}: unknown field")

    def check_format(self, expected: str, version: int) -> None:
        """The ``format`` and ``version`` fields of a versioned document."""
        fmt = self.text("format")
        if fmt != expected:
            raise ConfigError(f"{self.path}.format: expected {expected!r}, found {fmt!r}")
        found = self.integer("version")
        if found != version:
            raise ConfigError(
                f"{self.path}.version: unsupported format version {found} (this build reads "
                f"{version})"
            )

    def required(self, name: str) -> Any:
        if name not in self.data:
            raise ConfigError(f"{self.path}.{name}: required field missing")
        return self.data[name]

    def text(self, name: str, default: str | None = None) -> str:
        if name not in self.data and default is not None:
            return default
        value = self.required(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.path}.{name}: expected a non-empty string")
        return value

    def integer(self, name: str) -> int:
        value = self.required(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.path}.{name}: expected an integer")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path}.{name}: expected true or false")
        return value

    def hexbytes(self, name: str) -> bytes | None:
        """An optional hexadecimal string field (None when absent)."""
        if name not in self.data:
            return None
        value = self.data[name]
        message = f"{self.path}.{name}: expected a hexadecimal string"
        if not isinstance(value, str) or not value:
            raise ConfigError(message)
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise ConfigError(message) from None

    def required_hexbytes(self, name: str) -> bytes:
        """A hexadecimal string field that must be present and non-empty."""
        value = self.text(name)
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise ConfigError(f"{self.path}.{name}: expected a hexadecimal string") from None

    def array(self, name: str, *, default: list[Any] | None = None) -> list[Any]:
        if name not in self.data and default is not None:
            return default
        value = self.required(name)
        if not isinstance(value, list):
            raise ConfigError(f"{self.path}.{name}: expected a JSON array")
        return value

    def obj(self, name: str) -> JsonObject:
        """A nested object field (empty when absent)."""
        return JsonObject(self.data.get(name, {}), f"{self.path}.{name}")
