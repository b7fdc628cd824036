"""Where experiments and models live, and which model version is the reviewed one."""

from __future__ import annotations

from riskradar.config import Settings
from riskradar.errors import NoChampion
from riskradar.lake import Lake

CHAMPION = "champion"


def tracking_uri(settings: Settings, lake: Lake) -> str:
    """The configured tracking URI, or the embedded store: SQLite under <lake>/mlflow."""
    if settings.mlflow.tracking_uri:
        return settings.mlflow.tracking_uri
    (lake.root / "mlflow").mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{lake.root / 'mlflow' / 'mlflow.db'}"


def model_name(target: str) -> str:
    return f"riskradar-{target}"


def find_champion(client, name: str):
    """The registered version with the alias `champion`, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def champion_version(client, name: str):
    """The registered version with the alias `champion`, or NoChampion saying what exists."""
    from mlflow.exceptions import MlflowException

    version = find_champion(client, name)
    if version is not None:
        return version
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        versions = []
    if not versions:
        raise NoChampion(f"no model {name!r} is registered: run `riskradar train` first") from None
    aliases = sorted(client.get_registered_model(name).aliases or {})
    raise NoChampion(
        f"model {name!r} has {len(versions)} version(s) but none is the champion "
        f"(aliases: {', '.join(aliases) or 'none'}): no version passed the promotion gate; a data "
        f"scientist can promote one in the MLflow UI (alias '{CHAMPION}') after review"
    ) from None
