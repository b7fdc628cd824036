"""Pseudonyms: the Spark HMAC-SHA256 equals the standard library's, ids are trimmed, the key
stays out of plans, the lake records which key built it; no key, no run."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import unicodedata
from datetime import datetime

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from intake.pseudonym import (
    check_lake_key,
    ensure_demo_key,
    key_fingerprint,
    load_key,
    pseudonymise,
    write_lake_key,
)
from riskradar.errors import KeyMismatch, MissingPseudonymKey

KEY = b"k" * 16
LONG_KEY = b"a-longer-key-" * 10  # over one SHA-256 block: hashed first, as RFC 2104 says


def python_hmac(key: bytes, domain: str, value: str) -> str:
    return hmac.new(key, f"{domain}:{value}".encode(), hashlib.sha256).hexdigest()


VALUES = ["JB149148", "99000027", " 99000027 ", "ÄÖü-ß", "a b", "", "   ", None]
# What people see as 99000027: with a no-break space, a tab, in full-width digits.
LOOKALIKES = [
    "99000027\u00a0",
    "\t99000027",
    "\uff19\uff19\uff10\uff10\uff10\uff10\uff12\uff17",
    "\u00a099000027\u2003",
]


@pytest.mark.parametrize("key", [KEY, LONG_KEY])
def test_pseudonymise_equals_python_hmac_of_what_people_see(spark, key):
    values = VALUES + LOOKALIKES
    df = spark.createDataFrame([(i, v) for i, v in enumerate(values)], "i int, v string")
    got = pseudonymise(df, {"v": F.col("v")}, key, domain="police_crimes")
    # Values already in NFKC without surrounding whitespace hash exactly as before (the lake
    # keeps its pseudonyms); " 99000027 " and its look-alikes become 99000027's; blanks give null.
    expected = [
        None
        if v is None or not v.strip()
        else python_hmac(key, "police_crimes", unicodedata.normalize("NFKC", v).strip())
        for v in values
    ]
    assertDataFrameEqual(
        got, spark.createDataFrame(list(enumerate(expected)), "i int, v string"), checkRowOrder=True
    )
    assert expected[0] == python_hmac(key, "police_crimes", "JB149148")
    assert len({expected[1], expected[2], *expected[len(VALUES) :]}) == 1 and expected[1] is not None


def test_a_contract_may_keep_ids_apart_that_differ_by_such_characters(spark):
    df = spark.createDataFrame([(i, v) for i, v in enumerate(["99000027", *LOOKALIKES])], "i int, v string")
    got = pseudonymise(df, {"v": F.col("v")}, KEY, domain="d", normalise=False)
    assert got.select("v").distinct().count() == 1 + len(LOOKALIKES)  # trim: only spaces go


def test_pseudonymise_keeps_columns_and_their_order_and_drops_its_pads(spark):
    df = spark.createDataFrame([("x", "1", 5)], "a string, id string, n int")
    got = pseudonymise(df, {"id": F.col("id"), "a_pseudonym": F.col("a")}, KEY, domain="d")
    assert got.columns == ["a", "id", "n", "a_pseudonym"]
    assert got.collect()[0].asDict() == {
        "a": "x",
        "id": python_hmac(KEY, "d", "1"),
        "n": 5,
        "a_pseudonym": python_hmac(KEY, "d", "x"),
    }


def test_pseudonymise_on_a_wide_frame_twice_and_joined_with_itself(spark):
    names = [f"c{i}" for i in range(150)]
    df = spark.createDataFrame([tuple(f"{r}-{i}" for i in range(150)) for r in range(3)], names)
    once = pseudonymise(df, {"c0": F.col("c0")}, KEY, domain="d")
    twice = pseudonymise(once, {"c1": F.col("c1"), "c149": F.col("c149")}, KEY, domain="d")
    assert twice.columns == names
    rows = twice.select("c0", "c1", "c2", "c149").orderBy("c2").collect()
    assert [r.asDict() for r in rows] == [
        {
            "c0": python_hmac(KEY, "d", f"{r}-0"),
            "c1": python_hmac(KEY, "d", f"{r}-1"),
            "c2": f"{r}-2",
            "c149": python_hmac(KEY, "d", f"{r}-149"),
        }
        for r in range(3)
    ]
    # Two calls on the same frame, joined: each call's pads are its own columns.
    a = pseudonymise(df, {"p": F.col("c0")}, KEY, domain="a").select("c0", F.col("p").alias("pa"))
    b = pseudonymise(df, {"p": F.col("c0")}, KEY, domain="b").select("c0", F.col("p").alias("pb"))
    joined = sorted(a.join(b, "c0").collect())
    assert [tuple(r) for r in joined] == [
        (f"{r}-0", python_hmac(KEY, "a", f"{r}-0"), python_hmac(KEY, "b", f"{r}-0")) for r in range(3)
    ]


def test_pseudonymise_with_nothing_to_do_returns_the_frame(spark):
    df = spark.createDataFrame([("1",)], "id string")
    assert pseudonymise(df, {}, KEY, domain="d") is df


def test_domain_separates_feeds(spark):
    df = spark.createDataFrame([("123",)], "v string")
    got = pseudonymise(df, {"a": F.col("v"), "b": F.col("v")}, KEY, domain="a")
    other = pseudonymise(df, {"b": F.col("v")}, KEY, domain="b")
    assert got.first()["a"] != other.first()["b"]


def test_fingerprint_is_keyed_short_and_not_the_key():
    fp = key_fingerprint(KEY)
    assert fp == hmac.new(KEY, b"riskradar pseudonym key fingerprint v1", hashlib.sha256).hexdigest()[:16]
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert fp == key_fingerprint(bytes(KEY)) != key_fingerprint(LONG_KEY)
    assert fp not in (KEY.hex(), hashlib.sha256(KEY).hexdigest()[:16], hashlib.sha256(KEY).hexdigest()[-16:])


def test_lake_records_its_key_once_and_refuses_another(tmp_path):
    lake = tmp_path / "lake"
    record = lake / "_meta" / "pseudonym_key.json"
    assert check_lake_key(lake, KEY) == key_fingerprint(KEY)
    written = json.loads(record.read_text())
    assert set(written) == {"fingerprint", "algorithm", "fingerprint_of", "created_at"}
    assert (written["fingerprint"], written["algorithm"]) == (key_fingerprint(KEY), "HMAC-SHA256")
    assert datetime.fromisoformat(written["created_at"]).tzinfo is not None
    before = record.read_bytes()

    assert check_lake_key(lake, KEY) == key_fingerprint(KEY)  # the same key: nothing rewritten
    assert record.read_bytes() == before
    with pytest.raises(KeyMismatch) as refused:
        check_lake_key(lake, LONG_KEY, key_env="PARTNER_KEY")
    message = str(refused.value)
    assert f"fingerprint {key_fingerprint(KEY)}" in message
    assert f"PARTNER_KEY holds a key of fingerprint {key_fingerprint(LONG_KEY)}" in message
    assert "`riskradar rekey`" in message and str(record) in message
    assert refused.value.exit_code == 2
    assert record.read_bytes() == before
    assert sorted(p.name for p in record.parent.iterdir()) == ["pseudonym_key.json"]  # no temp files


def test_default_env_var_is_named_in_the_refusal(tmp_path):
    write_lake_key(tmp_path, KEY)
    with pytest.raises(KeyMismatch, match="RISKRADAR_PSEUDONYM_KEY holds a key of fingerprint"):
        check_lake_key(tmp_path, LONG_KEY)


def test_rewritten_record_moves_the_lake_to_the_new_key(tmp_path):
    check_lake_key(tmp_path, KEY)
    assert write_lake_key(tmp_path, LONG_KEY) == key_fingerprint(LONG_KEY)
    assert check_lake_key(tmp_path, LONG_KEY) == key_fingerprint(LONG_KEY)
    with pytest.raises(KeyMismatch, match=f"built with .* fingerprint {key_fingerprint(LONG_KEY)}"):
        check_lake_key(tmp_path, KEY)
    assert sorted(p.name for p in (tmp_path / "_meta").iterdir()) == ["pseudonym_key.json"]


@pytest.mark.parametrize("content", ["", "{not json", '{"algorithm": "HMAC-SHA256"}', '{"fingerprint": 7}'])
def test_unreadable_record_refuses(tmp_path, content):
    (tmp_path / "_meta").mkdir()
    (tmp_path / "_meta" / "pseudonym_key.json").write_text(content)
    with pytest.raises(KeyMismatch, match="pseudonym_key.json"):
        check_lake_key(tmp_path, KEY)


def test_two_first_runs_with_different_keys_record_one_key(tmp_path):
    """Whatever the interleaving, one key is recorded and the other run is refused."""
    for attempt in range(10):
        lake = tmp_path / f"lake{attempt}"
        start = threading.Barrier(2)
        outcome: dict[bytes, str] = {}

        def run(key: bytes, lake=lake, start=start, outcome=outcome) -> None:
            start.wait()
            try:
                check_lake_key(lake, key)
                outcome[key] = "recorded"
            except KeyMismatch:
                outcome[key] = "refused"

        threads = [threading.Thread(target=run, args=(k,)) for k in (KEY, LONG_KEY)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winner = json.loads((lake / "_meta" / "pseudonym_key.json").read_text())["fingerprint"]
        assert sorted(outcome.values()) == ["recorded", "refused"]
        assert winner == key_fingerprint(next(k for k, v in outcome.items() if v == "recorded"))


def test_missing_or_short_key_refuses(monkeypatch):
    monkeypatch.delenv("RISKRADAR_PSEUDONYM_KEY", raising=False)
    with pytest.raises(MissingPseudonymKey, match="RISKRADAR_PSEUDONYM_KEY is not set"):
        load_key("RISKRADAR_PSEUDONYM_KEY")
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", "short")
    with pytest.raises(MissingPseudonymKey, match="holds 5 bytes that are not whitespace, 5 of them"):
        load_key("RISKRADAR_PSEUDONYM_KEY")


@pytest.mark.parametrize(
    ("key", "solid", "distinct"),
    [
        (" " * 40, 0, 0),  # blank: 16 spaces once passed the length check
        ("\t\n " * 12 + "abc", 3, 3),
        ("a" * 64, 64, 1),
        ("0123456789012345678901234567890123", 34, 10),  # enough: accepted
    ],
)
def test_a_key_without_entropy_is_refused_and_says_how_to_make_one(monkeypatch, key, solid, distinct):
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", key)
    if distinct >= 10 and solid >= 32:
        assert load_key("RISKRADAR_PSEUDONYM_KEY") == key.encode()
        return
    with pytest.raises(MissingPseudonymKey) as refused:
        load_key("RISKRADAR_PSEUDONYM_KEY")
    message = str(refused.value)
    assert f"holds {solid} bytes that are not whitespace, {distinct} of them different" in message
    assert 'python -c "import secrets; print(secrets.token_hex(32))"' in message


def test_demo_key_is_created_once_and_reused(monkeypatch, tmp_path):
    monkeypatch.delenv("RISKRADAR_PSEUDONYM_KEY", raising=False)
    key1, created1 = ensure_demo_key(tmp_path / "k" / "demo.key", "RISKRADAR_PSEUDONYM_KEY")
    monkeypatch.delenv("RISKRADAR_PSEUDONYM_KEY")
    key2, created2 = ensure_demo_key(tmp_path / "k" / "demo.key", "RISKRADAR_PSEUDONYM_KEY")
    assert (created1, created2) == (True, False)
    assert key1 == key2 and len(key1) == 64
    assert (tmp_path / "k" / "demo.key").stat().st_mode & 0o777 == 0o600
