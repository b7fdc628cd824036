"""share into a real PostgreSQL + PostGIS server (Debian's packages, started here on 127.0.0.1 as
an unprivileged user, stopped when the module ends): each recipient logs in with its own role and
reads its own rows; another recipient's rows are denied to it; a revoked recipient can no longer
log in and its rows are gone; a database that cannot be reached delivers nothing."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from builders import CITY, POLICE, write_agreements
from support.postgres import LocalPostgres, server_bin
from synthetic_panel import CELLS, FIRST, WEEKS, scored_copy

from features.panel import week_of
from jobs import share
from riskradar.errors import ShareDatabaseError
from riskradar.exchange import read_register

pytestmark = pytest.mark.skipif(
    server_bin() is None,
    reason="PostgreSQL with PostGIS is not installed (.ci/run installs Debian's postgresql and "
    "postgresql-<version>-postgis-3)",
)
NEWEST = week_of(FIRST + WEEKS - 1)
AS_OF = str(NEWEST + timedelta(days=1))
PASSWORDS = {"police": "police-pw-0123456789", "city": "city-pw-0123456789"}


@pytest.fixture(scope="module")
def postgres():
    server = LocalPostgres(server_bin()).start()
    yield server
    server.stop()


@pytest.fixture
def served(scored_synthetic, postgres, tmp_path, monkeypatch):
    monkeypatch.setenv("RISKRADAR_SHARE_DSN", postgres.dsn())
    for name, password in PASSWORDS.items():
        monkeypatch.setenv(f"SHARE_PW_{name.upper()}", password)
    folder = write_agreements(
        tmp_path / "sharing",
        police={**POLICE, "database": {"password_env": "SHARE_PW_POLICE"}},
        city={**CITY, "database": {"password_env": "SHARE_PW_CITY"}},
    )
    settings, lake = scored_copy(
        scored_synthetic,
        tmp_path,
        **{"sharing.agreements_dir": str(folder), "sharing.database": {"dsn_env": "RISKRADAR_SHARE_DSN"}},
    )
    return settings, lake, folder


def _login(postgres, recipient: str) -> psycopg.Connection:
    return psycopg.connect(
        postgres.dsn(user=f"riskradar_{recipient}", password=PASSWORDS[recipient]), autocommit=True
    )


def test_each_role_reads_its_own_rows_and_not_another_recipients(served, postgres, spark):
    settings, lake, _ = served
    share.main(["--all", "--as-of", AS_OF], settings=settings, spark=spark)
    with _login(postgres, "police") as conn:
        rows = conn.execute(
            "SELECT count(*), min(week)::text, count(DISTINCT cell_id) FROM forecast"
        ).fetchone()
        assert rows == (CELLS, str(NEWEST), CELLS)
        columns = [r[0] for r in conn.execute("SELECT * FROM forecast LIMIT 0").description]
        assert columns == ["target", "week", "cell_id", "geometry", "rank", "hotspot", "expected_count"] + [
            f"driver_{i}{s}" for i in (1, 2, 3) for s in ("", "_detail")
        ]
        srid, kind = conn.execute(
            "SELECT DISTINCT ST_SRID(geometry), GeometryType(geometry) FROM forecast"
        ).fetchone()
        assert (srid, kind) == (4326, "MULTIPOLYGON")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM riskradar_city.forecast")
    with _login(postgres, "city") as conn:
        codes = [r[0] for r in conn.execute("SELECT area_code FROM forecast ORDER BY area_code")]
        assert codes == ["1", "2", "3", "4", "5"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM riskradar_police.forecast")
    (record,) = [r for r in read_register(lake) if r["recipient"] == "city"]
    assert record["database"] == {"role": "riskradar_city", "rows": 5}


def test_a_revoked_recipient_can_no_longer_log_in_and_its_rows_are_gone(served, postgres, spark):
    settings, lake, folder = served
    share.main(["--all", "--as-of", AS_OF], settings=settings, spark=spark)
    revoked = {
        **CITY,
        "database": {"password_env": "SHARE_PW_CITY"},
        "revoked": {"on": AS_OF, "reason": "convenant ended"},
    }
    write_agreements(folder, city=revoked)
    share.main(["--all", "--as-of", AS_OF, "--skip-undeliverable"], settings=settings, spark=spark)
    with pytest.raises(
        psycopg.OperationalError, match="password authentication failed|not permitted to log in"
    ):
        _login(postgres, "city")
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        assert admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'riskradar_city'").fetchone() is None
    with _login(postgres, "police") as conn:  # the others are served as before
        assert conn.execute("SELECT count(*) FROM forecast").fetchone()[0] == CELLS
    withdrawal = read_register(lake, recipient="city")[-1]
    assert withdrawal["kind"] == "withdrawal" and withdrawal["database"] is True
    assert "revoked on" in withdrawal["reason"] and "convenant ended" in withdrawal["reason"]


def test_an_unreachable_database_delivers_nothing_and_names_no_password(served, postgres, spark, monkeypatch):
    settings, lake, _ = served
    closed = postgres.dsn().replace(f":{postgres.port}/", ":9/")
    monkeypatch.setenv("RISKRADAR_SHARE_DSN", closed)
    with pytest.raises(ShareDatabaseError, match=r"sharing database \(\$RISKRADAR_SHARE_DSN\)") as caught:
        share.main(["--recipient", "police", "--as-of", AS_OF], settings=settings, spark=spark)
    assert postgres.password not in str(caught.value)
    assert not lake.outbox("police").exists() and read_register(lake) == []
    assert not list((lake.disclosures / "_pending").glob("*.json"))
