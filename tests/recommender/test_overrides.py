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
