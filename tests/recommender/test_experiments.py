"""Experiments: a stable split of readers by the shares asked, validated definitions, one running at a time."""

from collections import Counter

import pytest
from pydantic import ValidationError

from recommender.experiments import Experiment, ExperimentStore, named, running
from recommender.specs import ExperimentSpec

SPEC = ExperimentSpec.model_validate({"name": "mmr", "variants": [
    {"name": "control", "share": 0.7}, {"name": "diverse", "share": 0.3, "options": {"mmr_lambda": 0.7}}]})


def test_readers_are_split_by_the_shares_and_each_stays_in_one_variant():
    experiment = Experiment(SPEC)
    split = Counter(experiment.assign(f"reader-{i}").variant for i in range(20_000))
    assert abs(split["mmr/control"] / 20_000 - 0.7) < 0.015 and set(split) == {"mmr/control", "mmr/diverse"}
    assert all(experiment.assign(f"reader-{i}") == experiment.assign(f"reader-{i}") for i in range(100))
    assert experiment.assign("r").options in ((), (("mmr_lambda", "0.7"),))


def test_two_experiments_split_readers_independently():
    other = Experiment(SPEC.model_copy(update={"name": "other"}))
    pairs = Counter((Experiment(SPEC).assign(f"r{i}").variant[4:], other.assign(f"r{i}").variant[6:])
                    for i in range(20_000))
    assert abs(pairs["control", "control"] / 20_000 - 0.49) < 0.015  # 0.7 × 0.7


def test_options_become_the_query_parameters_of_the_same_names():
    spec = ExperimentSpec.model_validate({"name": "x", "variants": [
        {"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "options": {
            "strategy": "embedding", "group_stories": False, "window_days": 0}}]})
    assert spec.variants[1].options.query() == (("strategy", "embedding"), ("group_stories", "false"),
                                                ("window_days", "0.0"))


@pytest.mark.parametrize("variants, message", [
    ([{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}], "add up to 1"),
    ([{"name": "a", "share": 0.5}, {"name": "a", "share": 0.5}], "unique"),
    ([{"name": "a", "share": 1.0}], "at least 2"),
    ([{"name": "A b", "share": 0.5}, {"name": "b", "share": 0.5}], "pattern"),
    ([{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "options": {"mmr_lambda": 2}}], "less than or equal"),
    ([{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "options": {"boost": 1}}], "Extra inputs"),
])
def test_a_bad_definition_says_what_is_wrong(variants, message):
    with pytest.raises(ValidationError, match=message):
        ExperimentSpec.model_validate({"name": "x", "variants": variants})


def test_activating_an_experiment_stops_the_running_one_and_a_redefinition_restarts_it(store):
    store = ExperimentStore(store)
    first = store.put(SPEC, active=True)
    second = store.put(SPEC.model_copy(update={"name": "next"}), active=True)
    assert store.active().name == "next" and not store.get("mmr").active and store.get("mmr").stopped_at
    assert store.put(SPEC.model_copy(update={"name": "next"}), active=True).started_at == second.started_at
    changed = SPEC.model_copy(update={"name": "next", "variants": list(reversed(SPEC.variants))})
    assert store.put(changed, active=True).started_at >= second.started_at >= first.started_at
    assert store.get("next").spec == changed
    assert store.version() > 0


def test_the_one_in_settings_runs_only_when_none_was_activated_over_the_api(store):
    store = ExperimentStore(store)
    configured = SPEC.model_copy(update={"name": "configured"})
    assert running(store.active(), configured).name == "configured"
    assert named(store, configured, "configured").active
    store.put(SPEC, active=True)
    assert running(store.active(), configured).name == "mmr"
    assert not named(store, configured, "configured").active and named(store, configured, "nope") is None
