"""Demo: the whole pipeline on the bundled Chicago sample with embedded defaults.

    riskradar demo [--config conf/riskradar.yaml]

Local Spark, a local lake (conf: lake.root, or RISKRADAR_LAKE). Unlike the other jobs it
may create a pseudonymisation key: if RISKRADAR_PSEUDONYM_KEY is not set, it uses (and on
first run creates) a local key file beside the config folder, and says so.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

from pyspark.sql import SparkSession

from intake.pseudonym import ensure_demo_key
from riskradar.cli import COMMANDS
from riskradar.config import Settings, demo_key_file
from riskradar.errors import NoChampion
from riskradar.runtime import context, job_parser, parse

log = logging.getLogger(__name__)


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    spark: SparkSession | None = None,
) -> None:
    parser = job_parser("riskradar demo", __doc__)
    args = parse(parser, argv)
    settings, lake, spark = context(args, settings, spark)
    env = settings.pseudonymisation.key_env
    key_file = demo_key_file(settings)
    _, created = ensure_demo_key(key_file, env)
    if created:
        log.info("demo: created a local pseudonymisation key in %s (set %s to use your own)", key_file, env)
    elif key_file.exists():
        log.info("demo: using the local pseudonymisation key in %s", key_file)
    log.info("demo: lake at %s", lake.root)

    def run(command: str, *arguments: str):
        """One step, as `riskradar <command>` runs it (the CLI's command table names its job),
        in this process with this session and config."""
        job = importlib.import_module(COMMANDS[command][0])
        loudness = ["--quiet"] if args.quiet else ["--verbose"] if args.verbose else []
        argv = [*arguments, *loudness, "--config", settings.config_file]
        return job.main(argv, settings=settings, spark=spark)

    run("ingest", "--all")
    run("validate", "--all")
    run("build-features")
    run("train", "--all")
    scored = []
    for target in settings.targets:
        try:
            run("score", "--target", target)
        except NoChampion as exc:
            # Only when a reviewer took the alias away (the gate always leaves a champion, a
            # learned model or the best baseline): say so and go on with the other targets.
            log.warning("demo: %s is not scored: %s", target, exc)
            continue
        run("export", "--target", target)
        scored.append(target)
    # each partner's package, as its example agreement (conf/sharing/) allows
    run("share", "--all", "--skip-undeliverable")
    # the register of processing, and the Algoritmeregister entry of each champion
    run("register", "processing")
    for target in scored:
        run("register", "algorithm", "--target", target)
    log.info(
        f"demo: done. Validation reports: {lake.reports('validation')}; features: {lake.gold('features')}; "
        f"scores ({', '.join(scored) or 'none'}): {lake.gold('scores')}; reports: {lake.reports('scores')}; "
        f"partners' packages: {lake.root / 'outbox'} (`riskradar disclosures` lists them); "
        f"registers of processing and of the algorithms: {lake.reports('register')}; "
        f"audit log: {lake.audit}; experiments: `make mlflow-ui`, then http://127.0.0.1:5000"
    )


if __name__ == "__main__":
    main()
