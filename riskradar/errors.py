"""Named errors: each says what went wrong, where (file, row, key) and what was expected."""

from __future__ import annotations


class RiskradarError(Exception):
    """Base class; the CLI prints these without a traceback and exits non-zero."""

    exit_code = 1


class ConfigError(RiskradarError):
    """A config or contract value is missing or not allowed."""

    exit_code = 2


class UnsafeName(RiskradarError):
    """A partner or file name that could escape the lake or landing folder."""

    exit_code = 2


class MissingPseudonymKey(RiskradarError):
    """No pseudonymisation key in the environment: refusing to touch personal data."""

    exit_code = 2


class DeliveryRejected(RiskradarError):
    """One or more delivered files could not be read as the contract describes."""


class ValidationGateFailed(RiskradarError):
    """A batch failed its expectation suite: nothing of it was published."""


class ReconciliationError(RiskradarError):
    """Rows in != rows published + rows quarantined: something was lost or duplicated."""


class NothingToDo(RiskradarError):
    """A step was asked to work on input that does not exist."""


class NoChampion(RiskradarError):
    """A registered model has no version with the alias `champion`: nothing reviewed to score with."""


class ScoringOff(NoChampion):
    """Scoring of a target is switched off (`riskradar score --target T --off`): a reviewer
    stopped it, whatever the registry's aliases say. A NoChampion, so a run that skips targets
    without one skips it too."""


class IncompleteEntry(RiskradarError):
    """A register entry lacks a field its standard requires, or a value breaks the standard."""


class KeyMismatch(RiskradarError):
    """The pseudonymisation key differs from the one the lake was built with (or the lake's
    record of it cannot be read): its pseudonyms would not match the lake's."""

    exit_code = 2


class LakeLocked(RiskradarError):
    """Another run holds the lock of the table or feed this run would publish."""


class PublishRefused(RiskradarError):
    """A check of staged output failed: nothing of it was published (the report says which)."""


class AgreementNotInForce(RiskradarError):
    """A recipient's data-sharing agreement is missing, expired, revoked or not yet valid:
    nothing is delivered to it."""


class EmbargoNotPassed(RiskradarError):
    """A week asked for is still under the recipient's embargo: it is not delivered early."""


class ShareDatabaseError(RiskradarError):
    """The sharing database refused or could not be reached: nothing of the delivery was served."""


class PanelGrowthRefused(RiskradarError):
    """A build would add more weeks at once than the config allows: a stray date, or a long pause."""
