"""Editorial overrides: pins at positions, blocks per box, blocks from every box; stored, effective at once."""

from dataclasses import replace

import pytest

from recommender.article import ArticleNotFound
from recommender.engine import Recommender
from recommender.overrides import BoxOverrides, Pin
from tests.conftest import make_settings

SOURCE = "N34700"


@pytest.fixture
def engine(engine_on_both):
    """Every override test runs on both backends."""
    return engine_on_both


def ids(items):
    return [r.id for r in items]


def test_pin_goes_to_its_position_and_is_marked(engine, mind_articles):
    pick = mind_articles[-1].id
    engine.set_box_overrides(SOURCE, BoxOverrides(pins=(Pin(pick, 2),)))
    items = engine.similar(SOURCE)
    assert items[1].id == pick and items[1].pinned
    assert len(items) == 8 and ids(items).count(pick) == 1


def test_blocked_item_leaves_that_box_only(engine):
    top = engine.similar(SOURCE)[0].id
    other_box = "N16278"
    engine.set_box_overrides(SOURCE, BoxOverrides(blocks=frozenset({top})))
    assert top not in ids(engine.similar(SOURCE))
    assert engine.box_overrides(SOURCE).blocks == {top}
    assert engine.similar(other_box)  # untouched


def test_blocked_everywhere_leaves_every_box_and_pins_too(engine):
    top = engine.similar(SOURCE)[0].id
    engine.set_box_overrides("N16278", BoxOverrides(pins=(Pin(top, 1),)))
    engine.block_everywhere(top, "legal")
    assert top not in ids(engine.similar(SOURCE))
    assert top not in ids(engine.similar("N16278"))
    assert engine.blocked_everywhere() == {top: "legal"}
    assert engine.unblock_everywhere(top)
    assert top in ids(engine.similar(SOURCE))


def test_unpublished_pin_is_not_shown(engine, mind_articles):
    pick = mind_articles[-2]
    engine.set_box_overrides(SOURCE, BoxOverrides(pins=(Pin(pick.id, 1),)))
    engine.upsert([replace(pick, status="unpublished")])
    assert pick.id not in ids(engine.similar(SOURCE))


def test_overrides_survive_a_restart(data_dir, embedder):
    first = Recommender(make_settings(data_dir), embedder=embedder)
    first.set_box_overrides(SOURCE, BoxOverrides(pins=(Pin("N16278", 1),), blocks=frozenset({"N35354"})))
    first.block_everywhere("N55189", "legal")
    first.close()
    second = Recommender(make_settings(data_dir), embedder=embedder)
    assert second.box_overrides(SOURCE) == BoxOverrides(pins=(Pin("N16278", 1),), blocks=frozenset({"N35354"}))
    assert "N55189" in second.blocked_everywhere()
    assert second.similar(SOURCE)[0].id == "N16278"


def test_overrides_of_an_unknown_article_are_refused(engine):
    with pytest.raises(ArticleNotFound):
        engine.set_box_overrides("nope", BoxOverrides())


def test_every_change_of_a_box_is_logged_with_who_when_and_why(engine):
    engine.set_box_overrides(SOURCE, BoxOverrides(pins=(Pin("N16278", 1),), blocks=frozenset({"N35354"})),
                             "Olena", "follow-up of the lead story")
    engine.set_box_overrides(SOURCE, BoxOverrides(pins=(Pin("N16278", 2),)), "Ivan", "")
    changes = [(c.action, c.item_id, c.position, c.editor, c.reason) for c in engine.override_history(SOURCE)]
    assert changes == [("pin", "N16278", 2, "Ivan", ""), ("unblock", "N35354", None, "Ivan", ""),
                       ("pin", "N16278", 1, "Olena", "follow-up of the lead story"),
                       ("block", "N35354", None, "Olena", "follow-up of the lead story")]
    newest = engine.override_history(SOURCE, limit=1)
    assert len(newest) == 1 and newest[0].at.tzinfo is not None and newest[0].box == SOURCE
    assert engine.override_history("N16278") == []  # another box's history is its own


def test_blocks_from_every_box_are_logged_apart_from_any_box(engine):
    engine.block_everywhere("N55189", "court order", "Olena")
    assert engine.unblock_everywhere("N55189", "Ivan", "order lifted")
    assert not engine.unblock_everywhere("N55189", "Ivan")  # nothing to unblock: nothing logged
    changes = [(c.box, c.action, c.editor, c.reason) for c in engine.override_history(None)]
    assert changes == [(None, "unblock", "Ivan", "order lifted"), (None, "block", "Olena", "court order")]
    assert engine.override_history(SOURCE) == []
