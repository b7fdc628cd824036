"""The reader options of a contract: csv without header, another delimiter and encoding,
jsonl and parquet deliveries all land as the same canonical rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from builders import ROOT, write_config
from pyspark.sql import functions as F

from jobs import ingest, validate
from riskradar.config import load_settings
from riskradar.lake import Lake

DAYS = [
    {
        "date": f"2013-07-{d:02d}",
        "temperatureMax": 80.0 + d,
        "precipIntensity": 0.01 * d,
        "windSpeed": 5.0,
        "humidity": 0.5,
    }
    for d in range(1, 11)
]


def _weather_contract(folder: Path, **reader) -> Path:
    data = yaml.safe_load((ROOT / "conf" / "partners" / "weather.yaml").read_text())
    data["reader"] = {**data["reader"], **reader}
    data["landing"]["pattern"] = "*"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weather.yaml").write_text(yaml.safe_dump(data))
    return folder


def _deliver(tmp_path: Path, name: str, content: bytes, **reader):
    landing = tmp_path / "landing" / "weather"
    landing.mkdir(parents=True)
    (landing / name).write_bytes(content)
    contracts = _weather_contract(tmp_path / "contracts", **reader)
    return load_settings(
        write_config(
            tmp_path,
            landing=tmp_path / "landing",
            enabled=["weather"],
            **{"partners.contracts_dir": str(contracts)},
        )
    )


def _published(spark, settings) -> list[tuple]:
    weather = spark.read.parquet(str(Lake(settings.lake_root).silver("weather")))
    return [
        tuple(r)
        for r in weather.orderBy("date")
        .select(
            F.date_format("date", "yyyy-MM-dd"),
            F.round("temperature_max_c", 3),
            F.round("precip_intensity_mm_h", 3),
        )
        .collect()
    ]


EXPECTED = [
    (d["date"], round((d["temperatureMax"] - 32) * 5 / 9, 3), round(d["precipIntensity"] * 25.4, 3))
    for d in DAYS
]


@pytest.mark.parametrize("fmt", ["csv-latin1-semicolon-noheader", "jsonl", "parquet"])
def test_each_format_gives_the_same_silver_rows(spark, tmp_path: Path, fmt: str):
    order = ["precipIntensity", "temperatureMax", "windSpeed", "humidity", "date"]  # the contract's order
    if fmt == "jsonl":
        content = "\n".join(json.dumps(d) for d in DAYS).encode()
        settings = _deliver(tmp_path, "weather.jsonl", content, format="jsonl")
    elif fmt == "parquet":
        path = tmp_path / "w.parquet"
        pd.DataFrame(DAYS).to_parquet(path)
        settings = _deliver(tmp_path, "weather.parquet", path.read_bytes(), format="parquet")
    else:
        lines = [";".join(str(d[c]) for c in order) for d in DAYS]
        content = ("\n".join(lines) + "\n").encode("iso-8859-1")
        settings = _deliver(
            tmp_path, "weather.txt", content, format="csv", delimiter=";", encoding="ISO-8859-1", header=False
        )
    ingest.main(["--partner", "weather"], settings=settings, spark=spark)
    validate.main(["--partner", "weather"], settings=settings, spark=spark)
    assert _published(spark, settings) == EXPECTED
