"""Keyed pseudonymisation (HMAC-SHA256) as native Spark expressions.

HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)) is built from Spark's own `sha2`, so it
runs on the executors without a Python UDF. The same key gives the same pseudonym in every
run and every feed, so records stay linkable for deduplication but not readable.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from pyspark.sql import Column
from pyspark.sql import functions as F

from riskradar.errors import MissingPseudonymKey

_BLOCK = 64  # SHA-256 block size in bytes
MIN_KEY_BYTES = 16


def load_key(env_var: str) -> bytes:
    """The key from the environment; refuse to run without a usable one."""
    value = os.environ.get(env_var, "")
    if not value:
        raise MissingPseudonymKey(
            f"environment variable {env_var} is not set: personal identifiers cannot be "
            f"pseudonymised without a secret key. Set it to a random string of at least "
            f"{MIN_KEY_BYTES} characters (e.g. `export {env_var}=$(openssl rand -hex 32)`), "
            f"or run `riskradar demo`, which creates a local key for the bundled sample."
        )
    key = value.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise MissingPseudonymKey(
            f"environment variable {env_var} holds {len(key)} bytes; at least {MIN_KEY_BYTES} are needed"
        )
    return key


def ensure_demo_key(path: Path, env_var: str) -> tuple[bytes, bool]:
    """For `riskradar demo` only: use the env key, else a local key file (created once)."""
    if os.environ.get(env_var):
        return load_key(env_var), False
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        path.chmod(0o600)
        created = True
    os.environ[env_var] = path.read_text(encoding="utf-8").strip()
    return load_key(env_var), created


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256(value: Column, key: bytes, *, domain: str) -> Column:
    """Hex HMAC-SHA256 of `domain:value`; null stays null.

    `domain` (e.g. the feed name) keeps equal raw ids of different feeds apart.
    """
    ipad, opad = _pads(key)
    message = F.concat(F.lit(f"{domain}:".encode()), value.cast("string").cast("binary"))
    inner = F.unhex(F.sha2(F.concat(F.lit(ipad), message), 256))
    return F.when(value.isNull(), F.lit(None).cast("string")).otherwise(
        F.sha2(F.concat(F.lit(opad), inner), 256)
    )
