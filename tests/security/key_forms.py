"""Every form in which a pseudonymisation key could leak: the key, its padded forms (the
HMAC's key ^ 0x36.. and key ^ 0x5C..), each raw, as lower and upper case hex and as base64."""

from __future__ import annotations

import base64

from intake.pseudonym import key_pads


def secret_forms(key: bytes) -> dict[str, bytes]:
    """name -> the bytes to look for."""
    ipad, opad = key_pads(key)
    forms: dict[str, bytes] = {}
    for name, raw in (("key", key), ("ipad", ipad), ("opad", opad)):
        forms[f"{name} raw"] = raw
        forms[f"{name} hex"] = raw.hex().encode()
        forms[f"{name} HEX"] = raw.hex().upper().encode()
        forms[f"{name} base64"] = base64.b64encode(raw)
    return forms


def leaked(data: bytes | str, key: bytes) -> list[str]:
    """The names of the forms of `key` that `data` holds (none: an empty list)."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    return [name for name, form in secret_forms(key).items() if form in data]
