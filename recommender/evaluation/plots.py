"""Plots of an ``EvaluationResult`` with matplotlib: metric@k curves and score distributions per strategy."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from recommender.evaluation.run import EvaluationResult
from recommender.report import Report

_LABELS = {"p": "precision", "r": "recall", "ndcg": "nDCG", "alpha_ndcg": "α-nDCG"}


def plot_metric_at_k(result: EvaluationResult, families: Sequence[str] = ("alpha_ndcg", "ndcg", "p")) -> Figure:
    """One panel per metric family (α-nDCG, nDCG, precision, ...), a line per strategy over the cut-offs k."""
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        for strategy in result.strategies:
            values = [result.summary[strategy][f"{family}@{k}"] for k in result.ks]
            ax.plot(result.ks, values, marker="o", label=strategy, linewidth=2.2 if strategy == "default" else 1.4)
        ax.set_title(f"{_LABELS.get(family, family)}@k")
        ax.set_xlabel("k")
        ax.set_xticks(result.ks)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(f"{result.dataset}: {result.queries} queries")
    fig.tight_layout()
    return fig


def plot_score_distributions(result: EvaluationResult, bins: int = 30) -> Figure:
    """Per strategy, the scores of listed items: relevant (grade >= 1) against not relevant.

    Scores are each strategy's own scale (cosine, normalised BM25, ...): compare the overlap, not the axes."""
    strategies = result.strategies
    fig, axes = plt.subplots(1, len(strategies), figsize=(3.6 * len(strategies), 3.2), squeeze=False)
    for ax, strategy in zip(axes[0], strategies, strict=True):
        frame = result.scores[result.scores["strategy"] == strategy]
        relevant = frame[frame["grade"] >= 1]["score"]
        other = frame[frame["grade"] < 1]["score"]
        edges = np.histogram_bin_edges(frame["score"], bins=bins) if len(frame) else bins
        ax.hist(other, bins=edges, alpha=0.55, color="tab:gray", label="not relevant")
        ax.hist(relevant, bins=edges, alpha=0.65, color="tab:green", label="relevant")
        ax.set_title(strategy)
        ax.set_xlabel("score")
    axes[0][0].set_ylabel("listed items")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_per_query(result: EvaluationResult, metric: str = "ndcg@10") -> Figure:
    """The distribution of one per-query metric for each strategy (box plot)."""
    fig, ax = plt.subplots(figsize=(1.6 * len(result.strategies) + 2, 3.2))
    data = [result.per_query[result.per_query["strategy"] == s][metric].dropna() for s in result.strategies]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(result.strategies) + 1), result.strategies)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def plot_differences(results: Sequence[EvaluationResult], metric: str = "alpha_ndcg@10") -> Figure:
    """Per dataset, the default minus each baseline on ``metric`` with its 95 % paired-bootstrap interval: an
    interval clear of 0 is a real difference (filled marker), one across 0 is not (open marker)."""
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 2.8), squeeze=False, sharex=True)
    for ax, result in zip(axes[0], results, strict=True):
        table = result.comparisons(metric)
        y = np.arange(len(table))
        ax.errorbar(table["diff"], y, xerr=[table["diff"] - table["ci_low"], table["ci_high"] - table["diff"]],
                    fmt="none", ecolor="tab:blue", capsize=4)
        for yi, (diff, significant) in enumerate(zip(table["diff"], table["significant"], strict=True)):
            ax.plot(diff, yi, "o", color="tab:blue", markerfacecolor="tab:blue" if significant else "white")
        ax.axvline(0, color="gray", linewidth=1)
        ax.set_yticks(y, [f"vs {name}" for name in table.index])
        ax.set_title(f"{result.dataset} ({result.half or 'all'}, {result.queries} q)", fontsize="medium")
        ax.set_xlabel(f"default − baseline, {metric}")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def plot_report(report: Report) -> Figure:
    """An experiment's report (``recommender.report``): CTR per variant with its 95 % interval, and CTR by
    position, one line per variant."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    shown = [v for v in report.variants if v.impressions]
    ctr = np.array([v.ctr or 0.0 for v in shown])
    half = np.array([1.96 * np.sqrt(c * (1 - c) / v.impressions) for c, v in zip(ctr, shown, strict=True)])
    left.bar(range(len(shown)), ctr, yerr=half, capsize=6, color=[f"C{i}" for i in range(len(shown))])
    left.set_xticks(range(len(shown)), [f"{v.variant}\n{v.impressions:,} impressions" for v in shown],
                    fontsize="small")
    left.set_ylabel("CTR (clicks / impressions)")
    left.set_title("CTR per variant, 95 % interval")
    for i, v in enumerate(shown):
        right.plot([p.position for p in v.by_position], [p.ctr for p in v.by_position], marker="o",
                   color=f"C{i}", label=v.variant)
    right.set_xlabel("position")
    right.set_ylabel("CTR")
    right.set_title("CTR by position")
    right.legend(fontsize="small")
    right.grid(alpha=0.3)
    verdicts = [f"{c.variant} − {c.control}: {100 * (c.difference or 0):+.2f} points "
                f"({'significant' if c.significant else c.note or 'not significant'}, p = {c.p_value or 1:.3g})"
                for c in report.comparisons]
    fig.suptitle(f"experiment {report.experiment}: " + "; ".join(verdicts), fontsize="medium")
    fig.tight_layout()
    return fig
