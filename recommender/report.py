"""An experiment's report: impressions, clicks and CTR per variant (and by position), each variant against the
control with a 95 % interval and a two-proportion z-test, and a note where the sample is too small to say."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import NormalDist

from recommender.events import Counts, EventStore
from recommender.experiments import Experiment

TEST = ("two-proportion z-test on item CTR (clicks / impressions), pooled standard error, two-sided; 95 % "
        "interval of the difference: Wald, unpooled")
ALPHA = 0.05
POWER = 0.8
NORMAL = NormalDist()  # the standard normal (the stdlib's: serving processes need not import scipy)
# The normal approximation needs this many clicks and this many impressions without a click in each group.
MIN_EVENTS = 10


@dataclass(frozen=True, slots=True)
class PositionStats:
    position: int
    impressions: int
    clicks: int
    ctr: float | None


@dataclass(frozen=True, slots=True)
class VariantStats:
    variant: str
    impressions: int
    clicks: int
    ctr: float | None  # None: no impressions
    by_position: list[PositionStats] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Comparison:
    """``variant`` minus ``control`` in CTR (absolute), with its interval and test."""

    variant: str
    control: str
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    relative: float | None  # difference / control CTR
    p_value: float | None
    significant: bool
    min_detectable: float | None  # the smallest absolute difference this sample detects with 80 % power
    note: str | None  # set when the sample is too small to say


@dataclass(frozen=True, slots=True)
class Report:
    experiment: str
    since: int | None  # epoch ms
    variants: list[VariantStats]
    comparisons: list[Comparison]
    test: str = TEST
    alpha: float = ALPHA


def variant_stats(variant: str, by_position: Mapping[int, Counts]) -> VariantStats:
    positions = [PositionStats(p, c.impressions, c.clicks, _ratio(c.clicks, c.impressions))
                 for p, c in sorted(by_position.items())]
    impressions = sum(p.impressions for p in positions)
    clicks = sum(p.clicks for p in positions)
    return VariantStats(variant, impressions, clicks, _ratio(clicks, impressions), positions)


def _ratio(clicks: int, impressions: int) -> float | None:
    return clicks / impressions if impressions else None


def compare(control: VariantStats, other: VariantStats, alpha: float = ALPHA) -> Comparison:
    """The two-proportion z-test of ``other`` against ``control``, with the difference's interval."""
    n1, n2, c1, c2 = control.impressions, other.impressions, control.clicks, other.clicks
    small = [s.variant for s in (control, other)
             if min(s.clicks, s.impressions - s.clicks) < MIN_EVENTS]
    if not n1 or not n2:
        return Comparison(other.variant, control.variant, None, None, None, None, None, False, None,
                          "no impressions yet: nothing to compare")
    p1, p2 = c1 / n1, c2 / n2
    z = NORMAL.inv_cdf(1 - alpha / 2)
    pooled = (c1 + c2) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    p_value = 2 * (1 - NORMAL.cdf(abs(p2 - p1) / se_pooled)) if se_pooled > 0 else 1.0
    mde = (z + NORMAL.inv_cdf(POWER)) * se_pooled if se_pooled > 0 else None
    note = None
    if small:
        note = (f"too small to say: {' and '.join(small)} need at least {MIN_EVENTS} clicks and {MIN_EVENTS} "
                "impressions without a click for the test's normal approximation")
    return Comparison(other.variant, control.variant, p2 - p1, p2 - p1 - z * se, p2 - p1 + z * se,
                      (p2 - p1) / p1 if p1 else None, p_value, note is None and p_value < alpha, mde, note)


def build_report(experiment: str, labels: Sequence[str], counts: Mapping[str, Mapping[int, Counts]],
                 since: int | None = None) -> Report:
    """The report of an experiment whose variants carry ``labels`` (control first), from its counts."""
    variants = [variant_stats(label, counts.get(label, {})) for label in labels]
    return Report(experiment, since, variants, [compare(variants[0], v) for v in variants[1:]])


_AGO = re.compile(r"([0-9]+(?:\.[0-9]+)?)([dh])")


def parse_since(text: str, now: int) -> int:
    """``--since`` / ``?since=``: a time ago (``7d``, ``12h``) or an ISO 8601 date or time (UTC when it names
    no timezone), as epoch ms."""
    ago = _AGO.fullmatch(text.strip())
    if ago:
        return now - int(float(ago[1]) * (86_400_000 if ago[2] == "d" else 3_600_000))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is neither a time ago (7d, 12h) nor an ISO 8601 date or time") from None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def experiment_report(experiment: Experiment, events: EventStore, since: int | None = None) -> Report:
    """The report of an experiment from the stored events since ``since`` (epoch ms; default: its start)."""
    since = experiment.started_at if since is None else since
    labels = experiment.labels()
    return build_report(experiment.name, labels, events.counts(labels, since), since)


def _pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def _points(value: float | None, sign: str = "+") -> str:
    return "–" if value is None else f"{100 * value:{sign}.2f} pt"


def format_report(report: Report) -> str:
    """The report as text tables (what ``recommender report`` prints): CTR in %, differences in points."""
    positions = max((p.position for v in report.variants for p in v.by_position), default=0)
    lines = [f"experiment {report.experiment}", "",
             "| variant | impressions | clicks | CTR | " + " | ".join(f"CTR@{p}" for p in range(1, positions + 1)) + " |",
             "|---|---|---|---|" + "---|" * positions]
    for v in report.variants:
        at = {p.position: p.ctr for p in v.by_position}
        lines.append(f"| {v.variant} | {v.impressions:,} | {v.clicks:,} | {_pct(v.ctr)} | "
                     + " | ".join(_pct(at.get(p), 1) for p in range(1, positions + 1)) + " |")
    lines += ["", "| variant − control | difference | 95 % interval | relative | p | significant | detectable |",
              "|---|---|---|---|---|---|---|"]
    for c in report.comparisons:
        interval = "–" if c.ci_low is None or c.ci_high is None else f"{_points(c.ci_low)} … {_points(c.ci_high)}"
        lines.append(f"| {c.variant} − {c.control} | {_points(c.difference)} | {interval} | {_pct(c.relative, 1)} | "
                     f"{'–' if c.p_value is None else f'{c.p_value:.3g}'} | {'yes' if c.significant else 'no'} | "
                     f"{_points(c.min_detectable, '')} |")
    lines += ["", f"test: {report.test}; significant at p < {report.alpha}", *(
        f"note ({c.variant}): {c.note}" for c in report.comparisons if c.note)]
    return "\n".join(lines)
