"""A simulated reader population against a real server: readers with a known click model (they click reports
of the story they are reading more often) read boxes of two variants through the HTTP API and send what they
saw and clicked to ``POST /events``; ``GET /experiments/{name}`` must find the variant the model favours, and
no difference between two identical variants (an A/A test). The data: five ECB+ topics (same-story ground
truth, ../shared/data/ecbplus-dev)."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest

from recommender.engine import Recommender
from recommender.events import Counts
from recommender.experiments import Experiment
from recommender.loaders import read_articles
from recommender.refresher import refresh_queued
from recommender.report import ALPHA, build_report
from recommender.specs import ExperimentSpec
from tests.conftest import SHARED, make_settings
from tests.service.conftest import TOKEN, Server

ECB = SHARED / "data" / "ecbplus-dev"
TOPICS = 5
LIMIT = 5
# The click model: a reader clicks an item with probability SAME if it reports the story being read, else
# OTHER, times a bias for lower positions.
SAME, OTHER = 0.30, 0.02
POSITION_BIAS = [0.9**n for n in range(LIMIT)]
PAGES = 4  # per reader
AB = {"variants": [{"name": "control", "share": 0.5},
                   {"name": "plain", "share": 0.5, "options": {"strategy": "embedding"}}]}
AA = {"variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}


def groups() -> dict[str, tuple[str, str]]:
    """Article id -> (topic, group) for the ECB+ articles."""
    rows = [json.loads(line) for line in (ECB / "articles.jsonl").read_text().splitlines()]
    return {r["id"]: (r["topic"], r["group"]) for r in rows}


@pytest.fixture(scope="module")
def ecb_server(tmp_path_factory, embedder) -> Iterator[Server]:
    labels = groups()
    topics = sorted({topic for topic, _ in labels.values()})[:TOPICS]
    data = tmp_path_factory.mktemp("ecb") / "data"
    with Recommender(make_settings(data), embedder=embedder) as engine:
        engine.upsert(a for a in read_articles(ECB) if labels[a.id][0] in topics)
        refresh_queued(engine)
    # One client sends every reader's events here (a site's server would): the per-client rate is lifted.
    server = Server(data, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_EVENTS_RATE_PER_S="1000000",
                    RECOMMENDER_EVENTS_BURST="1000000").start()
    yield server
    server.stop()


def simulate(api: httpx.Client, pages: list[str], readers: int, rng: np.random.Generator) -> dict[str, list[float]]:
    """Every reader reads PAGES random pages; returns the model's click probability of each impression, by
    variant (what the report should find)."""
    story = {article: group for article, (_, group) in groups().items()}
    expected: dict[str, list[float]] = {}
    for r in range(readers):
        events = []
        for page in rng.choice(pages, PAGES, replace=False):
            body = api.get(f"/articles/{page}/similar", params={"limit": LIMIT, "reader": f"reader-{r}"}).json()
            when = datetime.now(UTC).isoformat()
            for n, item in enumerate(body["items"], 1):
                p = POSITION_BIAS[n - 1] * (SAME if story[item["id"]] == story[page] else OTHER)
                expected.setdefault(body["variant"], []).append(p)
                shown = {"type": "impression", "article_id": page, "item_id": item["id"], "position": n,
                         "list_id": body["list_id"], "variant": body["variant"], "ts": when}
                events += [shown] + ([dict(shown, type="click")] if rng.random() < p else [])
        assert api.post("/events", json=events).status_code == 200
    return expected


def run(server: Server, name: str, definition: dict, readers: int, seed: int) -> tuple[dict, dict[str, list[float]]]:
    with server.client() as api:
        assert api.put(f"/experiments/{name}", json=definition).status_code == 200
        pages = sorted(a["id"] for a in [json.loads(line) for line in
                                         (ECB / "articles.jsonl").read_text().splitlines()]
                       if api.get(f"/articles/{a['id']}").status_code == 200)
        expected = simulate(api, pages, readers, np.random.default_rng(seed))
        return api.get(f"/experiments/{name}").json(), expected


def test_the_report_finds_the_variant_the_readers_favour(ecb_server):
    # 240 readers: about 2,400 impressions a variant, enough to find the model's difference (≈ 4 points of CTR)
    # about 19 times in 20.
    report, expected = run(ecb_server, "plain-vs-default", AB, readers=240, seed=0)
    truth = {variant: float(np.mean(p)) for variant, p in expected.items()}
    favoured = max(truth, key=truth.__getitem__)
    assert abs(truth["plain-vs-default/plain"] - truth["plain-vs-default/control"]) > 0.02  # a test worth running
    comparison = report["comparisons"][0]
    print(f"\nexpected CTR by the click model: {truth}\n{json.dumps(report['comparisons'], indent=1)}")
    assert comparison["note"] is None and comparison["significant"]
    winner = comparison["variant"] if comparison["difference"] > 0 else comparison["control"]
    assert winner == favoured
    true_difference = truth[comparison["variant"]] - truth[comparison["control"]]
    assert comparison["ci_low"] <= true_difference <= comparison["ci_high"]
    assert sum(v["impressions"] for v in report["variants"]) == sum(len(p) for p in expected.values())


def test_two_identical_variants_are_not_told_apart(ecb_server):
    report, expected = run(ecb_server, "a-a", AA, readers=150, seed=1)
    comparison = report["comparisons"][0]
    print(f"\nA/A: {json.dumps(report['comparisons'], indent=1)}")
    assert set(expected) == {"a-a/a", "a-a/b"}
    assert comparison["note"] is None and not comparison["significant"]
    assert comparison["ci_low"] <= 0 <= comparison["ci_high"]


def test_identical_variants_differ_at_the_stated_error_rate_over_many_populations(ecb_server):
    """The A/A test repeated 400 times on the report function: each time a new experiment name (a new split),
    150 readers reading 4 random pages each of the boxes the server serves, clicks drawn from the model. The
    share of repetitions called significant must be the test's 5 % within its binomial noise, although readers
    and pages make impressions less independent than the z-test assumes."""
    story = {article: group for article, (_, group) in groups().items()}
    with ecb_server.client() as api:
        boxes = {a: [i["id"] for i in api.get(f"/articles/{a}/similar", params={"limit": LIMIT}).json()["items"]]
                 for a in story if api.get(f"/articles/{a}").status_code == 200}
    odds = {page: [POSITION_BIAS[n] * (SAME if story[item] == story[page] else OTHER) for n, item in enumerate(items)]
            for page, items in boxes.items()}
    pages, rng, repetitions = sorted(odds), np.random.default_rng(2), 400
    significant = 0
    for rep in range(repetitions):
        experiment = Experiment(ExperimentSpec.model_validate({"name": f"aa{rep}", **AA}))
        counts: dict[str, dict[int, Counts]] = {label: {} for label in experiment.labels()}
        for reader in range(150):
            label = experiment.assign(f"reader-{reader}").variant
            for page in rng.choice(pages, PAGES, replace=False):
                for n, p in enumerate(odds[page], 1):
                    before = counts[label].get(n, Counts())
                    counts[label][n] = Counts(before.impressions + 1, before.clicks + int(rng.random() < p))
        significant += build_report(experiment.name, experiment.labels(), counts).comparisons[0].significant
    rate = significant / repetitions
    print(f"\nA/A false-positive rate over {repetitions} populations: {rate:.3f}")
    assert abs(rate - ALPHA) < 3 * np.sqrt(ALPHA * (1 - ALPHA) / repetitions), rate
