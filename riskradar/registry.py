"""Where experiments and models live, how a fitted model becomes a registered version, and
which model version is the reviewed one. Model names come from the catalog (`model_name`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from riskradar.catalog import model_name as model_name  # re-exported: score asks the registry
from riskradar.config import Settings
from riskradar.errors import NoChampion, ScoringOff
from riskradar.lake import Lake

log = logging.getLogger(__name__)

CHAMPION = "champion"
# A tag of the registered model, not of a version: scoring of its target is switched off, and why
# ("<date> by <user>: <reason>"). It outlives new versions and the aliases a training sets.
SCORING_OFF = "riskradar.scoring_off"
# Types our models hold that skops does not trust by default: the tree predictor of the
# gradient boosting model, our baselines, imputer, blend, offset and average models, the dtype that
# SimpleImputer kept in the linear models registered before MedianImputer replaced it.
SKOPS_TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "numpy.dtype",
    "models.baselines.HistoryRate",
    "models.estimators.MedianImputer",
    "models.estimators.Blend",
    "models.estimators.Offset",
    "models.estimators.Average",
]
# What a registered model needs to be loaded and to predict: the flavor's loader, the libraries of
# its pipeline and of its skops file, and riskradar itself (the classes of the baselines, the
# imputer and the blend; riskradar's own dependencies come with it). Stated, not inferred: MLflow
# infers them by loading the model in a subprocess (3-4 s a version) and lists whatever that
# process imported (pytest, rich, psutil). riskradar is the project's package, not one of a public
# index: install it from the commit in the training run's tag `riskradar.git_commit` (and
# `riskradar.git_dirty` false: the code of that commit is the code that trained it).
MODEL_REQUIREMENTS = ("mlflow", "scikit-learn", "scipy", "numpy", "pandas", "skops", "riskradar")


def tracking_uri(settings: Settings, lake: Lake) -> str:
    """The configured tracking URI, or the embedded store: SQLite under <lake>/mlflow."""
    if settings.mlflow.tracking_uri:
        return settings.mlflow.tracking_uri
    (lake.root / "mlflow").mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{lake.root / 'mlflow' / 'mlflow.db'}"


def register_model(model: Any, artifact: str, example, name: str) -> str:
    """Log a fitted model in the active MLflow run as artifact `artifact`, with the signature of
    `example` (a pandas frame of its input columns), as a new version of `name`; the version."""
    import mlflow

    # The signature states doubles, what `riskradar score` passes (models.scoring: astype(float)),
    # not the float32 that training holds features in: a pyfunc consumer then predicts from the
    # panel's columns as they are (MLflow refuses float64 for a float32 input, widens float32).
    example = example.astype("float64")
    info = mlflow.sklearn.log_model(
        model,
        name=artifact,
        input_example=example.head(5),
        signature=mlflow.models.infer_signature(example, model.predict(example)),
        registered_model_name=name,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=model_requirements(),
    )
    return info.registered_model_version


def model_requirements() -> list[str]:
    """MODEL_REQUIREMENTS pinned to the versions this process runs. One that is not installed as
    a distribution (riskradar run from its source tree) is left out, with a warning: a name
    without a version could install another package of that name."""
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for package in MODEL_REQUIREMENTS:
        try:
            pinned.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            log.warning(
                "%s is not installed as a package: the model's requirements.txt leaves it out "
                "(install the project with `pip install -e .` to have it pinned)",
                package,
            )
    return pinned


def tag_version(client, name: str, version: str, tags: Mapping[str, str]) -> None:
    """Set `tags` on a registered version, in their order."""
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


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


def scoring_off(client, name: str) -> str | None:
    """Why scoring of the model's target is switched off, or None when it is on (or the model
    is not registered yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name).tags.get(SCORING_OFF)
    except MlflowException:
        return None


def switch_scoring(client, name: str, note: str | None) -> None:
    """Switch scoring of the model's target off, saying why (`note`), or on again (None). A
    model not registered yet is registered empty, so the switch holds for its first training."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    if note is not None:
        client.set_registered_model_tag(name, SCORING_OFF, note)
    elif scoring_off(client, name) is not None:
        client.delete_registered_model_tag(name, SCORING_OFF)


def require_scoring_on(client, name: str, target: str) -> None:
    """ScoringOff, naming why and how to switch it back on, when scoring of `target` is off."""
    note = scoring_off(client, name)
    if note is not None:
        raise ScoringOff(
            f"scoring of {target!r} is switched off ({note}); the champion of {name} stays as it is: "
            f"`riskradar score --target {target} --on` switches scoring back on"
        )
