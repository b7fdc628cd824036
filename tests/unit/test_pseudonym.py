"""Spark-native HMAC-SHA256 equals the standard library's; no key, no run."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pyspark.sql import functions as F

from riskradar.errors import MissingPseudonymKey
from riskradar.pseudonym import ensure_demo_key, hmac_sha256, load_key


@pytest.mark.parametrize("key", [b"k" * 16, b"a-longer-key-" * 10])  # short and > one block
def test_spark_hmac_equals_python_hmac(spark, key):
    values = ["JB149148", "", "ÄÖü-ß", None]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r[0] for r in df.select(hmac_sha256(F.col("v"), key, domain="police_crimes")).collect()]
    expected = [
        None if v is None else hmac.new(key, f"police_crimes:{v}".encode(), hashlib.sha256).hexdigest()
        for v in values
    ]
    assert got == expected


def test_domain_separates_feeds(spark):
    df = spark.createDataFrame([("123",)], "v string")
    a, b = df.select(
        hmac_sha256(F.col("v"), b"k" * 16, domain="a"), hmac_sha256(F.col("v"), b"k" * 16, domain="b")
    ).first()
    assert a != b


def test_missing_or_short_key_refuses(monkeypatch):
    monkeypatch.delenv("RISKRADAR_PSEUDONYM_KEY", raising=False)
    with pytest.raises(MissingPseudonymKey, match="RISKRADAR_PSEUDONYM_KEY is not set"):
        load_key("RISKRADAR_PSEUDONYM_KEY")
    monkeypatch.setenv("RISKRADAR_PSEUDONYM_KEY", "short")
    with pytest.raises(MissingPseudonymKey, match="holds 5 bytes; at least 16"):
        load_key("RISKRADAR_PSEUDONYM_KEY")


def test_demo_key_is_created_once_and_reused(monkeypatch, tmp_path):
    monkeypatch.delenv("RISKRADAR_PSEUDONYM_KEY", raising=False)
    key1, created1 = ensure_demo_key(tmp_path / "k" / "demo.key", "RISKRADAR_PSEUDONYM_KEY")
    monkeypatch.delenv("RISKRADAR_PSEUDONYM_KEY")
    key2, created2 = ensure_demo_key(tmp_path / "k" / "demo.key", "RISKRADAR_PSEUDONYM_KEY")
    assert (created1, created2) == (True, False)
    assert key1 == key2 and len(key1) == 64
    assert (tmp_path / "k" / "demo.key").stat().st_mode & 0o777 == 0o600
