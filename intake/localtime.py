"""Wall-clock times of a time zone -> UTC instants, with an explicit policy at DST changes.

Partners write event times as the clock on the wall showed them. Once a year such a time does
not exist (spring forward: 03/09/2014 02:30 AM in America/Chicago was skipped) and once a year
it exists twice (fall back: 11/02/2014 01:30 AM happened in CDT and again an hour later in
CST). Spark's `to_utc_timestamp` silently picks one instant (java.time's choice: a skipped time
moves forward by the length of the gap, a repeated time takes the earlier instant). The
contract's `TimestampSpec.nonexistent` / `.ambiguous` make that choice explicit, and these
expressions say which rows it applied to.

Native Spark expressions only (no Python UDF). The Spark session time zone must be UTC
(riskradar.spark sets it in every session), so that a parsed timestamp holds the wall-clock
fields as they were written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from pyspark.sql import Column
from pyspark.sql import functions as F

from riskradar.config import TimestampSpec, check_zone

# How far from the instant the zones' offsets "before" and "after" a change are read: shorter
# than the time between two changes of one zone (at least 12 hours in the tz database since
# 1970) and longer than every overlap since then but Antarctica/Vostok's 7 hours in 1994. Gaps
# are found whatever their length (Pacific/Apia skipped 2011-12-30 whole).
_PROBE_MICROS = 6 * 3600 * 1_000_000

NONEXISTENT_POLICIES = get_args(TimestampSpec.model_fields["nonexistent"].annotation)
AMBIGUOUS_POLICIES = get_args(TimestampSpec.model_fields["ambiguous"].annotation)


@dataclass(frozen=True)
class LocalTime:
    """A local wall time resolved to UTC, with what the time zone made of it.

    The three columns are expressions over the same input: add them once (`withColumns`)
    and refer to them by name rather than inlining them into several rules.
    """

    # the UTC instant chosen by the policy (null where the policy is quarantine and the time
    # is nonexistent/ambiguous)
    utc: Column
    nonexistent: Column  # boolean: the local wall time does not exist in the zone (skipped at a DST change)
    ambiguous: Column  # boolean: it occurs twice (fall-back overlap)


def local_to_utc(
    local: Column, timezone: str, *, nonexistent: str = "shift_forward", ambiguous: str = "earlier"
) -> LocalTime:
    """`local` is a timestamp read as wall-clock time in `timezone` (Spark session time zone is UTC).

    - `utc`: the instant the wall time denotes. A nonexistent time (in a spring-forward gap)
      is moved forward by the length of the gap under `shift_forward` (02:30 -> 03:30 CDT), or
      null under `quarantine`. An ambiguous time (in a fall-back overlap) is its first
      occurrence under `earlier` (the daylight-saving one), its second under `later`, or null
      under `quarantine`. Every other time has exactly one instant. `shift_forward` and
      `earlier` give what `F.to_utc_timestamp` gives.
    - `nonexistent`, `ambiguous`: booleans, never null (false where `local` is null).
    Null `local` gives null `utc`. The gap and overlap lengths come from the zone's own offsets
    (30 minutes on Lord Howe Island, an hour in most zones), read 6 hours either side.
    `local` may be TIMESTAMP or TIMESTAMP_NTZ. Raises ValueError for an unknown zone or policy.
    """
    check_zone(timezone)
    if nonexistent not in NONEXISTENT_POLICIES:
        raise ValueError(f"nonexistent = {nonexistent!r}: allowed: {', '.join(NONEXISTENT_POLICIES)}")
    if ambiguous not in AMBIGUOUS_POLICIES:
        raise ValueError(f"ambiguous = {ambiguous!r}: allowed: {', '.join(AMBIGUOUS_POLICIES)}")

    local = local.cast("timestamp")  # a no-op for TIMESTAMP; NTZ keeps its fields under UTC
    wall = F.unix_micros(local)  # the wall-clock fields, counted as if they were UTC
    # java.time's instant: a gap shifted forward, an overlap's earlier occurrence. Its
    # neighbourhood holds the change, if any, that makes this wall time special.
    first = F.to_utc_timestamp(local, timezone)
    first_micros = F.unix_micros(first)
    before = _offset_micros(first_micros - _PROBE_MICROS, timezone)
    after = _offset_micros(first_micros + _PROBE_MICROS, timezone)
    # The wall time read with each offset, and whether the zone really had that offset then.
    at_before, at_after = wall - before, wall - after
    fits_before = _offset_micros(at_before, timezone) == before
    fits_after = _offset_micros(at_after, timezone) == after

    is_nonexistent = F.coalesce(~fits_before & ~fits_after, F.lit(False))
    is_ambiguous = F.coalesce(fits_before & fits_after & (before != after), F.lit(False))

    none = F.lit(None).cast("timestamp")
    utc = first  # shift_forward (= wall - before) and earlier
    if ambiguous == "later":
        utc = F.when(is_ambiguous, F.timestamp_micros(F.greatest(at_before, at_after))).otherwise(utc)
    elif ambiguous == "quarantine":
        utc = F.when(is_ambiguous, none).otherwise(utc)
    if nonexistent == "quarantine":
        utc = F.when(is_nonexistent, none).otherwise(utc)
    return LocalTime(utc=utc, nonexistent=is_nonexistent, ambiguous=is_ambiguous)


def _offset_micros(instant_micros: Column, timezone: str) -> Column:
    """The zone's UTC offset at an instant (microseconds since the epoch), in microseconds."""
    return F.unix_micros(F.from_utc_timestamp(F.timestamp_micros(instant_micros), timezone)) - instant_micros
