"""Keyed pseudonymisation (HMAC-SHA256) in Spark, with the key kept out of every plan.

HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)) is built from Spark's own `sha2`, so it
runs on the executors without a Python UDF. The key's two padded forms travel as data: a
one-row frame made from an RDD, broadcast and cross-joined to the rows, then dropped. A plan
then shows `Scan ExistingRDD[...]` where an expression literal would have shown the padded
key, so the Spark UI's SQL tab, its REST API, the event log, `explain()` and any exception
that prints a plan hold no form of the key. Classic (py4j) sessions only: Spark Connect sends
a local frame inside the plan.

The same key gives the same pseudonym in every run and every feed, so records stay linkable
for deduplication but not readable. The lake records which key built it (a keyed fingerprint,
never the key) in `<lake>/_meta/pseudonym_key.json`; a run with another key is refused until
`riskradar rekey` has migrated the lake.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import unicodedata
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from riskradar.errors import KeyMismatch, MissingPseudonymKey

_BLOCK = 64  # SHA-256 block size in bytes
# A key must carry entropy: at least this many bytes that are not whitespace, and this many
# different bytes (64 hex characters, what `secrets.token_hex(32)` gives, have 16).
MIN_KEY_BYTES = 32
MIN_DISTINCT_BYTES = 10
MAKE_A_KEY = 'python -c "import secrets; print(secrets.token_hex(32))"'
DEFAULT_KEY_ENV = "RISKRADAR_PSEUDONYM_KEY"
ALGORITHM = "HMAC-SHA256"
# The fixed message of the fingerprint. It holds no ':', and every pseudonym's message is
# "<domain>:<value>", so no pseudonym can equal a fingerprint.
_FINGERPRINT_MESSAGE = b"riskradar pseudonym key fingerprint v1"
FINGERPRINT_HEX_CHARS = 16
KEY_RECORD = Path("_meta") / "pseudonym_key.json"


def load_key(env_var: str) -> bytes:
    """The key from the environment; refuse to run without a usable one (never naming its value)."""
    value = os.environ.get(env_var, "")
    if not value:
        raise MissingPseudonymKey(
            f"environment variable {env_var} is not set: personal identifiers cannot be "
            f"pseudonymised without a secret key. Set it to a random key of at least "
            f"{MIN_KEY_BYTES} characters (make one with `{MAKE_A_KEY}`), "
            f"or run `riskradar demo`, which creates a local key for the bundled sample."
        )
    key = value.encode("utf-8")
    solid = bytes(b for b in key if not chr(b).isspace())
    if len(solid) < MIN_KEY_BYTES or len(set(solid)) < MIN_DISTINCT_BYTES:
        raise MissingPseudonymKey(
            f"environment variable {env_var} holds {len(solid)} bytes that are not whitespace, "
            f"{len(set(solid))} of them different; a key needs at least {MIN_KEY_BYTES} and "
            f"{MIN_DISTINCT_BYTES} (a guessable key makes every pseudonym guessable): make one with "
            f"`{MAKE_A_KEY}`"
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


def key_pads(key: bytes) -> tuple[bytes, bytes]:
    """The key's inner and outer padded forms (RFC 2104): key ^ 0x36.., key ^ 0x5C.."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def normalised_text(values: pd.Series) -> pd.Series:
    """What people see of an id: Unicode NFKC (full-width digits are digits, a no-break space a
    space) without surrounding whitespace of any kind (spaces, tabs, no-break spaces)."""
    return values.map(lambda v: None if v is None else unicodedata.normalize("NFKC", v).strip())


@lru_cache(maxsize=1)
def _normalised_udf():
    return F.pandas_udf(normalised_text, "string")


def pseudonymise(
    df: DataFrame, columns: dict[str, Column], key: bytes, *, domain: str, normalise: bool = True
) -> DataFrame:
    """Return `df` with each `name -> value` of `columns` added (or replaced) as the hex
    HMAC-SHA256 of f"{domain}:{normalised(value)}"; a null or blank value gives null.
    The key's pads join the rows as data (a broadcast one-row frame), never as a plan literal.

    `domain` (e.g. the feed name) keeps equal raw ids of different feeds apart. A value is
    normalised as people read it (`normalised_text`: NFKC, all surrounding whitespace removed),
    so " 42 ", "42" + a no-break space or a tab, and "４２" get 42's pseudonym; a value that is
    already in that form (plain digits and letters) gets the same pseudonym as before. With
    `normalise=False` (a contract's `id_normalisation: trim`) only surrounding spaces are
    trimmed. The other columns of `df` and their order are kept; a replaced column keeps its place.
    """
    if not columns:
        return df
    ipad, opad = key_pads(key)
    # Names no caller uses, new on every call: a frame pseudonymised twice, or a join of two
    # pseudonymised frames, never sees two pad columns of one name.
    tag = uuid.uuid4().hex[:12]
    ipad_name, opad_name = f"__rr_ipad_{tag}", f"__rr_opad_{tag}"
    spark = df.sparkSession
    # From an RDD, not a local list: a local relation may be printed with its rows.
    rows = spark.sparkContext.parallelize([(bytearray(ipad), bytearray(opad))], 1)
    pads = spark.createDataFrame(rows, f"`{ipad_name}` binary, `{opad_name}` binary")
    ipad_col, opad_col = F.col(f"`{ipad_name}`"), F.col(f"`{opad_name}`")
    prefix = F.lit(f"{domain}:".encode())

    def hashed(value: Column) -> Column:
        text = _normalised_udf()(value.cast("string")) if normalise else F.trim(value.cast("string"))
        inner = F.unhex(F.sha2(F.concat(ipad_col, prefix, text.cast("binary")), 256))
        digest = F.sha2(F.concat(opad_col, inner), 256)
        return F.when(text.isNull() | (text == ""), F.lit(None).cast("string")).otherwise(digest)

    joined = df.crossJoin(F.broadcast(pads))
    return joined.withColumns({name: hashed(value) for name, value in columns.items()}).drop(
        ipad_name, opad_name
    )


def key_fingerprint(key: bytes) -> str:
    """A short keyed fingerprint of `key` (the first 16 hex chars of HMAC-SHA256(key, a fixed
    message)): equal keys give equal fingerprints, and it reveals nothing usable about the key
    (it is neither the key nor a plain hash of it)."""
    return hmac.new(key, _FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()[:FINGERPRINT_HEX_CHARS]


def key_record_path(lake_root: Path) -> Path:
    return Path(lake_root) / KEY_RECORD


def check_lake_key(lake_root: Path, key: bytes, *, key_env: str = DEFAULT_KEY_ENV) -> str:
    """The fingerprint of `key`, after making sure the lake at `lake_root` was built with it.

    A lake without a record gets one (its first run with personal data decides the key);
    a lake whose record names another fingerprint raises KeyMismatch, naming both fingerprints,
    the environment variable `key_env` the key came from and `riskradar rekey`. Two first runs
    at once cannot both record: the record is published without replacing one that exists.
    """
    fingerprint = key_fingerprint(key)
    path = key_record_path(lake_root)
    if not path.exists():
        _publish(path, _record(fingerprint), replace=False)
    recorded = _read_record(path)
    if recorded != fingerprint:
        raise KeyMismatch(
            f"the lake at {lake_root} was built with the pseudonymisation key of fingerprint "
            f"{recorded} (recorded in {path}), but {key_env} holds a key of fingerprint "
            f"{fingerprint}. Its pseudonyms would not match the lake's, and the same people and "
            f"events would be counted again under new ids. Set {key_env} to the lake's key, or "
            f"move the lake to the new key with `riskradar rekey`."
        )
    return fingerprint


def write_lake_key(lake_root: Path, key: bytes) -> str:
    """Record `key`'s fingerprint as the lake's key, replacing any record (for `riskradar
    rekey`, once the lake's pseudonyms have moved to `key`); returns the fingerprint."""
    fingerprint = key_fingerprint(key)
    _publish(key_record_path(lake_root), _record(fingerprint), replace=True)
    return fingerprint


def _record(fingerprint: str) -> dict[str, str]:
    return {
        "fingerprint": fingerprint,
        "algorithm": ALGORITHM,
        "fingerprint_of": f"HMAC-SHA256(key, {_FINGERPRINT_MESSAGE.decode()!r}), "
        f"first {FINGERPRINT_HEX_CHARS} hex characters",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _publish(path: Path, record: dict[str, str], *, replace: bool) -> None:
    """Write `record` as `path` atomically: a temp file in the same folder, then a rename
    (`replace`) or a hard link, which fails if another process published first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        pass  # another run recorded its key first; the caller compares with that one
    except OSError:  # a file system without hard links: rename, unless a record appeared
        if not path.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_record(path: Path) -> str:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        fingerprint = record["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyMismatch(
            f"{path}: the lake's pseudonymisation key record cannot be read ({exc!r}); it should "
            f'be JSON with a "fingerprint". Restore it from a backup, or rewrite it with '
            f"`riskradar rekey` once you know which key built the lake."
        ) from None
    if not isinstance(fingerprint, str):
        raise KeyMismatch(f'{path}: "fingerprint" should be a string, not {fingerprint!r}')
    return fingerprint
