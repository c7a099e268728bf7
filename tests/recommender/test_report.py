"""The report's statistics: a real difference is found, identical variants are not told apart more often than the
stated error rate, and a small sample is said to be too small."""

import numpy as np
import pytest

from recommender.events import Counts
from recommender.report import ALPHA, build_report, compare, format_report, parse_since, variant_stats


def counts(impressions: int, clicks: int, position: int = 1) -> dict[int, Counts]:
    return {position: Counts(impressions, clicks)}


def draw(rng: np.random.Generator, ctr: float, n: int) -> dict[int, Counts]:
    """n impressions over 8 positions, each clicked with probability ``ctr``."""
    per = n // 8
    return {p: Counts(per, int(rng.binomial(per, ctr))) for p in range(1, 9)}


def test_a_known_difference_is_found_with_an_interval_around_it():
    control, better = variant_stats("e/a", counts(20_000, 1_000)), variant_stats("e/b", counts(20_000, 1_300))
    c = compare(control, better)
    assert c.difference == pytest.approx(0.015) and c.ci_low < 0.015 < c.ci_high
    assert c.ci_low > 0 and c.p_value < 1e-6 and c.significant and c.note is None
    assert c.relative == pytest.approx(0.3)


def test_identical_variants_differ_at_the_stated_error_rate():
    """An A/A test: 2,000 seeded repetitions of two variants with the same true CTR (4 %, 8,000 impressions
    each); the share called significant must be the test's 5 %, within its binomial noise."""
    rng = np.random.default_rng(0)
    calls = [compare(variant_stats("aa/a", draw(rng, 0.04, 8_000)), variant_stats("aa/b", draw(rng, 0.04, 8_000)))
             for _ in range(2_000)]
    rate = np.mean([c.significant for c in calls])
    assert abs(rate - ALPHA) < 3 * np.sqrt(ALPHA * (1 - ALPHA) / 2_000), rate  # 0.035 … 0.065
    covered = np.mean([c.ci_low <= 0 <= c.ci_high for c in calls])
    assert abs(covered - 0.95) < 0.015, covered


def test_a_real_difference_is_found_most_of_the_time():
    """Power: 4 % against 5 % with 16,000 impressions each is found in at least 80 % of 500 repetitions."""
    rng = np.random.default_rng(1)
    found = [compare(variant_stats("e/a", draw(rng, 0.04, 16_000)),
                     variant_stats("e/b", draw(rng, 0.05, 16_000))).significant for _ in range(500)]
    assert np.mean(found) > 0.8


def test_a_small_sample_is_too_small_to_say_even_when_it_looks_different():
    c = compare(variant_stats("e/a", counts(40, 1)), variant_stats("e/b", counts(40, 9)))
    assert not c.significant and "too small to say" in c.note and "e/a" in c.note
    nothing = compare(variant_stats("e/a", {}), variant_stats("e/b", counts(40, 9)))
    assert nothing.difference is None and not nothing.significant and "no impressions" in nothing.note


def test_the_report_has_every_variant_ctr_by_position_and_names_its_test():
    report = build_report("e", ["e/a", "e/b"], {"e/a": {1: Counts(100, 20), 2: Counts(100, 10)}})
    a, b = report.variants
    assert (a.impressions, a.clicks, a.ctr) == (200, 30, 0.15)
    assert [(p.position, p.ctr) for p in a.by_position] == [(1, 0.2), (2, 0.1)]
    assert (b.impressions, b.ctr) == (0, None)
    assert "z-test" in report.test
    text = format_report(report)
    assert "| e/a | 200 | 30 | 15.00 % | 20.0 % | 10.0 % |" in text and "no impressions" in text
    assert "CTR@3" not in text  # only the positions shown


def test_since_takes_a_time_ago_or_an_iso_time():
    now = 1_700_000_000_000
    assert parse_since("7d", now) == now - 7 * 86_400_000
    assert parse_since("12h", now) == now - 12 * 3_600_000
    assert parse_since("2026-11-01", now) == 1_793_491_200_000
    assert parse_since("2026-11-01T00:00:00+01:00", now) == 1_793_491_200_000 - 3_600_000
    with pytest.raises(ValueError, match="neither"):
        parse_since("last week", now)
