"""Labelled datasets: the general format (qrels.tsv or groups), and the MIND adapter's grading rule."""

import json

import pytest

from recommender.evaluation.dataset import from_mind, load_dataset, qrels_from_groups
from tests.conftest import MIND_SAMPLE


@pytest.fixture(scope="module")
def mind_head():
    return from_mind(MIND_SAMPLE, limit=60)


def test_mind_same_subcategory_and_a_shared_entity_is_grade_2(mind_head):
    # both baseball_mlb, both about the Phillies (Q650840)
    assert mind_head.qrels["N30028"]["N39199"] == 2
    assert mind_head.qrels["N39199"]["N30028"] == 2


def test_mind_same_subcategory_without_a_shared_entity_is_grade_1(mind_head):
    # both newspolitics: a Fort Lauderdale office opening and evangelicals backing Trump
    assert mind_head.qrels["N34700"]["N62791"] == 1


def test_mind_a_shared_entity_in_another_subcategory_is_not_relevant(mind_head):
    # baseball_mlb vs baseball_mlb_videos, both naming the same World Series entity
    assert "N12061" not in mind_head.qrels.get("N54841", {})
    # newsopinion vs newspolitics, both about Trump
    assert "N62791" not in mind_head.qrels.get("N42291", {})


def test_mind_articles_are_read_as_ingest_reads_them(mind_articles):
    dataset = load_dataset(MIND_SAMPLE, limit=len(mind_articles))  # the directory, detected by its news.tsv
    assert dataset.articles == mind_articles
    assert "subcategory" in dataset.rule


def test_no_article_is_relevant_to_itself_and_judgements_are_symmetric(mind_head):
    for query, judged in mind_head.qrels.items():
        assert query not in judged
        for other, grade in judged.items():
            assert mind_head.qrels[other][query] == grade


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_group_format_same_group_is_grade_2_same_topic_grade_1(tmp_path):
    _write_jsonl(tmp_path / "articles.jsonl", [
        {"id": "a1", "title": "Flood in Lviv", "group": "flood", "topic": "weather"},
        {"id": "a2", "title": "Lviv flood: day two", "group": "flood", "topic": "weather"},
        {"id": "a3", "title": "Heatwave ahead", "group": "heat", "topic": "weather"},
        {"id": "a4", "title": "Cup final tonight", "group": "final"},
        {"id": "a5", "title": "No label at all"},
        {"id": "bad"},  # no title: reported and skipped
    ])
    dataset = load_dataset(tmp_path)
    assert dataset.qrels == {
        "a1": {"a2": 2, "a3": 1},
        "a2": {"a1": 2, "a3": 1},
        "a3": {"a1": 1, "a2": 1},
    }
    assert dataset.queries == ["a1", "a2", "a3"]  # a4 is alone in its group, a5 unlabelled
    assert len(dataset.articles) == 5 and len(dataset.skipped) == 1


def test_a_text_field_is_read_as_the_body_unless_there_is_one_or_it_is_the_title_again(tmp_path):
    _write_jsonl(tmp_path / "articles.jsonl", [
        {"id": "a1", "title": "Flood in Lviv", "text": "The river rose overnight.", "group": "flood"},
        {"id": "a2", "title": "Lviv flood", "body": "Day two.", "text": "Other text", "group": "flood"},
        {"id": "a3", "title": "Курс долара", "text": "Курс долара", "group": "rate"},
    ])
    bodies = {a.id: a.body for a in load_dataset(tmp_path).articles}
    assert bodies == {"a1": "The river rose overnight.", "a2": "Day two.", "a3": ""}


def test_qrels_file_takes_precedence_and_drops_self_and_unknown_articles(tmp_path):
    _write_jsonl(tmp_path / "articles.jsonl", [
        {"id": "a", "title": "A", "group": "g"}, {"id": "b", "title": "B", "group": "g"}, {"id": "c", "title": "C"},
    ])
    (tmp_path / "qrels.tsv").write_text(
        "query_id\tarticle_id\tgrade\n"
        "a\tc\t3\n"
        "a\ta\t2\n"        # the query itself
        "a\tghost\t2\n"    # not in articles.jsonl
        "c\tb\t0\n",       # grade 0 = not relevant
        encoding="utf-8")
    dataset = load_dataset(tmp_path)
    assert dataset.qrels == {"a": {"c": 3}}
    assert dataset.queries == ["a"]


def test_a_dataset_without_judgements_is_refused(tmp_path):
    _write_jsonl(tmp_path / "articles.jsonl", [{"id": "a", "title": "A"}])
    with pytest.raises(ValueError, match="qrels"):
        load_dataset(tmp_path)


def test_the_mind_adapter_writes_the_general_format_and_it_reads_back_the_same(mind_head, tmp_path):
    mind_head.save(tmp_path / "mind60")
    again = load_dataset(tmp_path / "mind60")
    assert again.articles == mind_head.articles
    assert again.qrels == mind_head.qrels


def test_slicing_keeps_only_judgements_among_the_kept_articles(mind_head):
    small = mind_head.head(20)
    kept = {a.id for a in small.articles}
    assert set(small.qrels) <= kept
    assert all(set(j) <= kept for j in small.qrels.values())


def test_groups_helper_prefers_the_stronger_grade():
    qrels = qrels_from_groups({"x": "s", "y": "s", "z": None}, {"x": "t", "y": "t", "z": "t"})
    assert qrels["x"] == {"y": 2, "z": 1}


def _grouped(tmp_path, stories: int = 20, per_story: int = 3):
    rows = [{"id": f"s{s}-{i}", "title": f"story {s} report {i}", "group": f"s{s}", "topic": f"t{s // 2}"}
            for s in range(stories) for i in range(per_story)]
    (tmp_path / "articles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return load_dataset(tmp_path)


def test_halves_split_by_unit_of_judgements_with_a_fixed_seed(tmp_path):
    dataset = _grouped(tmp_path)
    units = dataset.units()
    assert units["s0-0"] == units["s1-2"] != units["s2-0"]  # a topic (two stories) is one unit
    halves = dataset.halves(seed=0)
    assert sorted(halves["tuning"] + halves["reporting"]) == sorted(dataset.queries)
    assert len(halves["tuning"]) == len(halves["reporting"]) == 30
    # no story or topic in both halves: nothing tuned on is judged on
    assert not {units[q] for q in halves["tuning"]} & {units[q] for q in halves["reporting"]}
    assert dataset.halves(seed=0) == halves and dataset.halves(seed=1) != halves


def test_mind_units_are_its_subcategories(mind_head):
    units = mind_head.units()
    assert units["N30028"] == units["N39199"]  # both baseball_mlb
    assert units["N34700"] != units["N30028"]


def test_stories_come_from_the_groups_an_unlabelled_article_is_a_story_of_its_own(tmp_path):
    rows = [{"id": "a", "title": "Quake hits Tokyo", "group": "q"}, {"id": "b", "title": "Tokyo shaken", "group": "q"},
            {"id": "c", "title": "Markets calm", "group": "m"}, {"id": "d", "title": "Storm warning"},
            {"id": "e", "title": "Storm warning"}]  # d and e: one article twice, unlabelled
    (tmp_path / "articles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    dataset = load_dataset(tmp_path)
    assert dataset.stories == {"a": "q", "b": "q", "c": "m"}
    assert dataset.same_story("a", "b") and not dataset.same_story("a", "c") and not dataset.same_story("c", "d")
    assert dataset.same_story("d", "e")  # the same title and text: one article, whatever the labels say
    assert dataset.story_reports("a") == {"b"}


def test_without_story_labels_the_same_story_is_read_from_the_grades(mind_head):
    assert mind_head.stories == {}
    assert mind_head.same_story("N30028", "N39199") is True  # grade 2
    assert mind_head.same_story("N34700", "N62791") is False  # grade 1: the same topic
    assert mind_head.same_story("nowhere", "N62791") is None  # nothing judged
