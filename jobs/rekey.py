"""Rekey: move the lake to a new pseudonymisation key, re-deriving its pseudonyms from landing.

    export RISKRADAR_OLD_PSEUDONYM_KEY="<the key the lake was built with>"
    export RISKRADAR_PSEUDONYM_KEY="<the new key>"
    riskradar rekey --old-key-env RISKRADAR_OLD_PSEUDONYM_KEY [--config conf/riskradar.yaml] [--keep-old]

The new key is the configured one (`pseudonymisation.key_env`). Pseudonyms are one-way, so every
batch of every enabled feed is ingested and validated again from its files, in the original order
and with its original time: from the lake's copy of each file version (`_delivered/<feed>/`, kept
by ingest), so a file corrected under the same name is no obstacle; from landing only where the
lake keeps no intact copy (a batch ingested before copies were kept), which must then be there as
delivered (the same sha256), or nothing is done. The run refuses unless the
old key is the lake's recorded one and the new one differs; it checks that the new lake has the
same rows, statuses and counts as the old one and shares no pseudonym with it, and puts the old
lake back on any failure. Gold tables, MLflow, the audit log and the other reports hold no
pseudonyms and are not touched. `--keep-old` keeps the old copy under `<lake>/_rekey/<run>/old/`
(it holds the old pseudonyms: delete it once checked). See intake/rekey.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from intake.pseudonym import load_key
from intake.rekey import RekeyRefused, rekey_lake
from riskradar.audit import audited_run
from riskradar.config import Settings
from riskradar.errors import RiskradarError
from riskradar.runtime import context, job_parser, parse

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> dict[str, Any]:
    parser = job_parser("riskradar rekey", __doc__)
    parser.add_argument(
        "--old-key-env",
        required=True,
        metavar="ENV",
        help="the environment variable that holds the key the lake was built with",
    )
    parser.add_argument(
        "--keep-old", action="store_true", help="keep the old lake under <lake>/_rekey/<run>/old/"
    )
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    key_env = settings.pseudonymisation.key_env
    arguments = {
        "old_key_env": args.old_key_env,
        "key_env": key_env,
        "keep_old": args.keep_old,
        "config": settings.config_file,
    }
    with audited_run(lake, "rekey", arguments) as record:
        if args.old_key_env == key_env:
            raise RekeyRefused(
                f"--old-key-env names {key_env}, the variable of the new key ({settings.config_file}: "
                f"pseudonymisation.key_env): put the lake's current key in another variable"
            )
        old_key, new_key = load_key(args.old_key_env), load_key(key_env)
        result = rekey_lake(
            spark,
            settings,
            lake,
            old_key=old_key,
            new_key=new_key,
            old_key_env=args.old_key_env,
            key_env=key_env,
            record=record,
            keep_old=args.keep_old,
        )
        _log_summary(str(lake.root), result)
    return result


def _log_summary(root: str, result: dict[str, Any]) -> None:
    log.info(
        "rekey %s: key fingerprint %s -> %s (run %s)",
        root,
        result["old_fingerprint"],
        result["new_fingerprint"],
        result["run_id"],
    )
    for feed, r in result["feeds"].items():
        replayed = sum(1 for b in r["batches"].values() if b is not None)
        log.info(
            f"  {feed}: {replayed} batch(es) replayed; silver {r['silver_rows']} row(s), history "
            f"{r['history_rows']}, quarantine {sum(r['quarantine_by_rule'].values())}; the same as before, "
            f"no pseudonym of the old key left"
        )
    if result["old_copy"]:
        log.info("  the old lake is kept in %s (old pseudonyms: delete it once checked)", result["old_copy"])


if __name__ == "__main__":
    try:
        main()
    except RiskradarError as exc:
        raise SystemExit(f"error: {exc}") from None
