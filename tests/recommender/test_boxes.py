"""Stored boxes: the default list is computed ahead, kept fresh by the queue, and read back byte for byte as
the list ranked on demand; a taken-down item never shows, even in a box not refreshed yet."""

import json
import os
import re
import shutil
from dataclasses import replace
from typing import Any

from recommender.article import Article
from recommender.listing import list_id, list_json
from recommender.overrides import BoxOverrides, Pin
from recommender.purges import list_ids
from recommender.rank import SimilarQuery
from recommender.refresher import refresh_queued
from recommender.store.boxes import stored_box
from tests.conftest import make_settings

SOURCE = "N34700"
MARATHON = "N16278"
FOLLOW_UP: dict[str, Any] = {"id": "fresh-marathon", "lead": "Jordan Tropf won again.",
                              "title": "Marine Corps Marathon winner speaks about the rain"}


def on_demand(engine, article_id, limit=8) -> bytes:
    return engine.list_json(article_id, engine.similar(article_id, SimilarQuery(limit=limit)))


def ids_in(body: bytes) -> list[str]:
    return [item["id"] for item in json.loads(body)["items"]]


def test_stored_box_is_the_list_ranked_on_demand_at_every_limit(engine, mind_articles):
    for article in mind_articles[:40]:
        for limit in (1, 5, 8, 20):
            assert engine.stored_list_json(article.id, limit) == on_demand(engine, article.id, limit)


def test_no_stored_box_or_a_queued_refresh_means_ranking_on_demand(engine, mind_articles):
    assert engine.stored_list_json(SOURCE, engine.settings.box_depth + 1) is None  # deeper than stored
    engine.upsert([replace(mind_articles[0], id="new-one")])
    assert engine.stored_list_json("new-one", 8) is None  # not computed yet
    assert engine.store.box(mind_articles[0].id).pending  # its near-copy may enter it: queued


def test_a_new_article_enters_its_neighbours_boxes(engine, mind_articles):
    from recommender.article import Article

    before = engine.store.box(MARATHON)
    engine.upsert([Article(section="sports", **FOLLOW_UP)])
    assert engine.store.box(MARATHON).pending
    refresh_queued(engine)
    stored = engine.stored_list_json(MARATHON, 20)
    assert FOLLOW_UP["id"] in ids_in(stored) and FOLLOW_UP["id"] not in [i[1] for i in before.items()]
    assert stored == on_demand(engine, MARATHON, 20)
    assert engine.stored_list_json(FOLLOW_UP["id"], 8) == on_demand(engine, FOLLOW_UP["id"])


def test_an_import_computes_its_boxes_from_the_rows_file_mapped_where_a_server_reads_it_by_calls(engine):
    assert engine.rows.reads_file and not engine.rows.maps_file  # a server's process: its PSS stays its own
    refresh_queued(engine)  # an import's: it reads most records of the file
    assert engine.rows.maps_file


def test_a_deleted_article_leaves_every_box_on_the_next_request(engine, mind_articles):
    from recommender.article import Article

    engine.upsert([Article(section="sports", **FOLLOW_UP)])
    refresh_queued(engine)
    holders = engine.store.holders(engine.store.get(FOLLOW_UP["id"]).key)
    assert holders
    engine.delete(FOLLOW_UP["id"])
    for article in mind_articles:
        body = engine.stored_list_json(article.id, 20) or on_demand(engine, article.id, 20)
        assert FOLLOW_UP["id"] not in ids_in(body)
    refresh_queued(engine)
    assert engine.store.queue_length() == 0
    assert all(FOLLOW_UP["id"] not in ids_in(engine.stored_list_json(a.id, 20)) for a in mind_articles)


def test_a_refresh_that_missed_a_takedown_stores_the_box_without_it_and_keeps_it_queued(engine):
    stale = list(engine.store.box(SOURCE).items())
    gone, blocked = stale[0][1], stale[1][1]
    engine.delete(gone)
    engine.block_everywhere(blocked, "legal")
    # A refresh computed before those writes stores its result after them.
    key = engine.store.get(SOURCE).key
    engine.store.write_boxes([(key, SOURCE, stale, None)], engine.store.seq)
    stored = engine.store.box(SOURCE)
    assert stored.pending and [i[1] for i in stored.items()] == [i[1] for i in stale[2:]]


def test_a_stale_box_drops_what_is_gone_and_backfills_from_its_depth(engine):
    stale = list(engine.store.box(SOURCE).items())
    gone, blocked = stale[0][1], stale[1][1]
    engine.delete(gone)
    engine.block_everywhere(blocked, "legal")
    # Whatever stored it: a box holding what this process knows is gone, with no refresh queued.
    engine.store._writer.execute("UPDATE boxes SET items = ? WHERE article_id = ?",
                                 (stored_box(stale, compress=True), SOURCE))
    engine.store._writer.execute("DELETE FROM refresh_queue")
    shown = ids_in(engine.stored_list_json(SOURCE, 8))
    assert gone not in shown and blocked not in shown
    assert shown == [i[1] for i in stale[2:10]]  # backfilled: still 8 items


def test_a_box_whose_shown_item_folds_a_gone_report_is_ranked_afresh_and_one_below_the_list_is_no_matter(engine):
    stale = list(engine.store.box(SOURCE).items())
    gone_key = engine.store.keys_of([stale[-1][1]])[stale[-1][1]]
    engine.following.published.difference_update([gone_key])  # this process followed its takedown
    items = [(key, item_id, item, [gone_key] if at in (2, 12) else also)  # folded under the 3rd and the 13th
             for at, (key, item_id, item, also) in enumerate(stale)]
    engine.store._writer.execute("UPDATE boxes SET items = ? WHERE article_id = ?", (stored_box(items, compress=True), SOURCE))
    engine.store._writer.execute("DELETE FROM refresh_queue")
    assert ids_in(engine.stored_list_json(SOURCE, 2)) == [i[1] for i in stale[:2]]  # the 3rd is not shown
    assert engine.stored_list_json(SOURCE, 3) is None  # its JSON lists the gone report: ranked afresh
    # With nothing to rank (the store unreachable), the item is dropped instead and the list backfilled.
    unranked = ids_in(engine.stored_list_json(SOURCE, 12, unranked=True))
    assert unranked == [i[1] for at, i in enumerate(stale) if at not in (2, 12)][:12]


def test_box_overrides_queue_the_box_and_show_after_refresh(engine, mind_articles):
    from recommender.overrides import BoxOverrides, Pin

    pick = mind_articles[-1].id
    engine.set_box_overrides(SOURCE, BoxOverrides(pins=(Pin(pick, 2),)))
    assert engine.stored_list_json(SOURCE, 8) is None
    refresh_queued(engine)
    assert ids_in(engine.stored_list_json(SOURCE, 8))[1] == pick
    assert engine.stored_list_json(SOURCE, 8) == on_demand(engine, SOURCE)


def test_list_json_is_the_documented_schema(engine):
    from service.schemas import SimilarList

    body = engine.stored_list_json(SOURCE, 8)
    assert SimilarList.model_validate_json(body).model_dump_json().encode() == body
    assert list_json(None, [], "preview") == b'{"article_id":null,"list_id":"%s","variant":"preview","items":[]}' % (
        list_id(None, "preview", "").encode())


def test_a_list_id_names_the_list_shown_and_nothing_else(engine):
    """The same list gets the same id on both paths; another limit, variant or article gets another one."""
    body = json.loads(engine.stored_list_json(SOURCE, 8))
    assert body["variant"] == "default" and re.fullmatch(r"[0-9a-f]{16}", body["list_id"])
    assert json.loads(on_demand(engine, SOURCE))["list_id"] == body["list_id"]
    others = {json.loads(engine.stored_list_json(SOURCE, 7))["list_id"],
              json.loads(engine.stored_list_json(SOURCE, 8, "exp/b"))["list_id"],
              json.loads(engine.stored_list_json(MARATHON, 8))["list_id"], body["list_id"]}
    assert len(others) == 4


def test_an_article_published_again_queues_the_boxes_it_may_enter(engine):
    from recommender.article import Article

    engine.upsert([Article(section="sports", **FOLLOW_UP)])
    refresh_queued(engine)
    engine.upsert([Article(section="sports", status="unpublished", **FOLLOW_UP)])
    refresh_queued(engine)
    assert FOLLOW_UP["id"] not in ids_in(engine.stored_list_json(MARATHON, 20))
    engine.upsert([Article(section="sports", **FOLLOW_UP)])  # same text: not re-embedded
    assert engine.store.box(MARATHON).pending
    refresh_queued(engine)
    assert FOLLOW_UP["id"] in ids_in(engine.stored_list_json(MARATHON, 20))


def test_boxes_stored_in_an_older_item_format_are_never_served_and_are_recomputed(data_dir, embedder):
    from recommender.engine import Recommender
    from recommender.settings import Settings

    # The data dir's boxes as code before the excerpt wrote them: items without excerpt and image_credit.
    with Recommender(Settings(data_dir=data_dir), embedder=embedder) as engine:
        box = engine.store.box(SOURCE)
        old = [(k, i, json.dumps({key: v for key, v in json.loads(item).items() if key not in ("excerpt",
                                  "image_credit")}), also) for k, i, item, also in box.items()]
        engine.store.write_boxes([(engine.store.get(SOURCE).key, SOURCE, old, None)], engine.store.seq)
        engine.store._writer.execute("UPDATE boxes SET items = ? WHERE article_id = ?",
                                     (json.dumps([list(item) for item in old]), SOURCE))  # the layout before
        assert [item[2] for item in engine.store.box(SOURCE).items()] == [item[2] for item in old]
        engine.store.set_meta("box_format", "items-v1")
    with Recommender(Settings(data_dir=data_dir), embedder=embedder) as engine:
        assert engine.stored_list_json(SOURCE, 8) is None  # queued on open: ranked on demand until refreshed
        assert all("excerpt" in item for item in json.loads(on_demand(engine, SOURCE))["items"])
        refresh_queued(engine)
        assert engine.stored_list_json(SOURCE, 8) == on_demand(engine, SOURCE)
        assert engine.store.queue_length() == 0


def test_every_item_carries_its_excerpt_and_image_credit(engine, mind_articles):
    from recommender.article import Article, excerpt

    engine.upsert([Article(section="sports", image_url="https://img.example/1.jpg", image_credit="Getty Images",
                           **FOLLOW_UP)])
    refresh_queued(engine)
    item = next(i for i in json.loads(engine.stored_list_json(MARATHON, 20))["items"] if i["id"] == FOLLOW_UP["id"])
    assert item["image_credit"] == "Getty Images" and item["excerpt"] == "Jordan Tropf won again."
    by_id = {a.id: a for a in mind_articles}
    for item in json.loads(on_demand(engine, SOURCE))["items"]:
        assert item["excerpt"] == excerpt(by_id[item["id"]], engine.settings.excerpt_chars) != ""


def stored_boxes(engine) -> tuple[list, list]:
    """Every stored box (items and floor) and box member, by key: what a refresh wrote, less when."""
    return ([tuple(r) for r in engine.store.read("SELECT key, items, floor FROM boxes ORDER BY key")],
            [tuple(r) for r in engine.store.read("SELECT box_key, item_key FROM box_members ORDER BY 1, 2")])


def test_an_import_shares_its_queue_with_a_helper_process_and_stores_the_boxes_one_process_would(engine, monkeypatch):
    import recommender.refresher as refresher

    keys = engine.store.published_keys().tolist()
    engine.store.enqueue(keys)
    monkeypatch.setattr(refresher, "SHARED_MIN", 1)  # the slice's 400 boxes shared as an archive's queue is
    computed_here: list[int] = []
    refresh = engine.boxes.refresh

    def refresh_here(batch: list[int]) -> int:
        computed_here.extend(batch)
        return refresh(batch)

    monkeypatch.setattr(engine.boxes, "refresh", refresh_here)
    assert refresh_queued(engine, processes=2) == len(keys)
    assert engine.store.queue_length() == 0
    assert computed_here and all(key % 2 == 0 for key in computed_here)  # the odd keys' boxes: the helper's
    shared = stored_boxes(engine)
    engine.store.enqueue(keys)
    monkeypatch.setattr(engine.boxes, "refresh", refresh)
    assert refresh_queued(engine) == len(keys)
    assert stored_boxes(engine) == shared


def crashing_helper(*args) -> None:
    os._exit(3)


def test_a_helper_that_dies_leaves_its_share_to_the_import_which_computes_every_box(engine, monkeypatch, caplog):
    import recommender.refresher as refresher

    keys = engine.store.published_keys().tolist()
    engine.store.enqueue(keys)
    monkeypatch.setattr(refresher, "SHARED_MIN", 1)
    monkeypatch.setattr(refresher, "_helper_main", crashing_helper)
    assert refresh_queued(engine, processes=2) == len(keys)
    assert engine.store.queue_length() == 0
    assert "box helper boxes-1 exited with 3" in caplog.text  # it was started, and its death seen


def test_the_editors_explained_table_lists_what_readers_get_with_a_pin_and_blocks_here_and_everywhere(engine):
    for source in ("N34700", "N16278", "N1256"):
        base = [r.id for r in engine.similar(source)]
        engine.set_box_overrides(source, BoxOverrides(pins=(Pin(base[-1], 1),), blocks=frozenset({base[2]})))
        engine.block_everywhere(base[4], "legal")
        refresh_queued(engine)
        readers = ids_in(engine.stored_list_json(source, 8))
        explained = [r.id for r in engine.similar(source, SimilarQuery(limit=8, explain=True))]
        assert readers == explained and len(readers) == 8, source
        assert readers[0] == base[-1] and base[2] not in readers and base[4] not in readers



def queued_and_changed(engine, article) -> tuple[set[str], set[str]]:
    """The boxes a write of ``article`` queued, and those of its 60 nearest articles (and the queued ones) that
    show it, as an item or folded under one, when every one of them is computed again. (Not every box whose items
    move: the write also moves the corpus weights, which can swap two near-equal items of a box it does not
    enter, a swap such a box keeps until it is computed again for a reason of its own.)"""
    engine.upsert([article])
    queued = ids_of(engine, engine.store.queued(100_000))
    vector = engine.store.stored([article.id])[article.id].vector
    near = ids_of(engine, [k for k in engine.following.index.search(vector[None, :], 60)[1][0].tolist() if k >= 0])
    engine.store.enqueue([engine.store.get(i).key for i in near])
    refresh_queued(engine)
    key = engine.store.get(article.id).key
    return queued, {i for i in near | queued if any(key in (item, *also) for item, also in items_of(engine, i) or [])}


def ids_of(engine, keys) -> set[str]:
    return {a.id for a in engine.following.rows.gather(list(keys)).articles}


def items_of(engine, article_id: str) -> list[tuple[int, list[int]]] | None:
    box = engine.store.box(article_id)
    return None if box is None else [(key, list(also)) for key, _, _, also in box.items()]


def test_a_write_queues_every_box_it_changes_and_no_full_box_its_words_and_meaning_cannot_enter(data_dir, embedder):
    """Each box queued is computed again by the refresher: a write queues its neighbours' boxes only where its best
    possible score there (its BM25 score against the box's source, by the corpus weights) reaches the box's
    lowest; with no corpus weights yet, every lexical score is taken to be a full match."""
    from recommender.article import Article
    from recommender.engine import Recommender

    unweighed = data_dir.parent / "unweighed"
    shutil.copytree(data_dir, unweighed)
    (unweighed / "lexical.weights").unlink()
    article = Article(section="sports", **FOLLOW_UP)
    with Recommender(make_settings(data_dir), embedder=embedder) as engine:
        queued, changed = queued_and_changed(engine, article)
    with Recommender(make_settings(unweighed), embedder=embedder) as engine:
        queued_unweighed, changed_unweighed = queued_and_changed(engine, article)
    assert changed == changed_unweighed and MARATHON in changed
    assert changed <= queued and changed <= queued_unweighed
    assert len(queued) < len(queued_unweighed)


def test_a_copy_of_an_article_queues_every_box_that_shows_it_where_it_may_fold_under_it(data_dir, embedder,
                                                                                       mind_articles):
    from recommender.engine import Recommender

    with Recommender(make_settings(data_dir, refresh_neighbours=1), embedder=embedder) as engine:
        original = engine.store.get(MARATHON)
        holders = ids_of(engine, engine.store.holders(original.key))
        assert len(holders) > 1
        copy = replace(original.article, id="marathon-copy", title=original.article.title + " (updated)")
        queued, changed = queued_and_changed(engine, copy)
        assert holders <= queued  # its one nearest article is the original: each box that shows it may fold it
        assert holders & changed  # and some do


def _counted_searches(engine, monkeypatch) -> list[Any]:
    """The searches of ``engine``'s index from now on."""
    searches = []
    search = engine.index.search

    def counted(*args: Any, **kwargs: Any) -> Any:
        searches.append(args)
        return search(*args, **kwargs)

    monkeypatch.setattr(engine.index, "search", counted)
    return searches


def test_an_import_holding_the_queue_searches_no_neighbours_until_a_box_is_stored(tmp_path, embedder, mind_articles,
                                                                                   monkeypatch):
    from recommender.engine import Recommender
    from recommender.locks import refresher_lock

    with Recommender(make_settings(tmp_path), embedder=embedder) as engine:
        lock = refresher_lock(engine.settings)
        assert lock.try_exclusive()
        searches = _counted_searches(engine, monkeypatch)
        engine.upsert(mind_articles[:60], refresher=lock)
        engine.upsert(mind_articles[60:120], refresher=lock)
        # Each write queued its own box, and no other process stores one: no neighbour's box to add (a corpus scan
        # a chunk on the flat index an import grows).
        assert not engine.store.any_box_stored() and not searches
        assert engine.store.queue_length() == len(engine.store.published_keys()) == 120
        refresh_queued(engine)
        searches.clear()
        engine.upsert([replace(mind_articles[0], id="a-copy")], refresher=lock)
        assert searches  # once a box is stored, a write queues the neighbours' boxes it may enter
        lock.release()


def test_a_write_whose_refresher_lock_another_process_holds_searches_the_neighbours(tmp_path, embedder,
                                                                                    mind_articles, monkeypatch):
    from recommender.engine import Recommender
    from recommender.locks import FileLock, refresher_lock

    server = FileLock(tmp_path / "refresher.lock")  # a running server's refresher
    assert server.try_exclusive()
    with Recommender(make_settings(tmp_path), embedder=embedder) as engine:
        searches = _counted_searches(engine, monkeypatch)
        engine.upsert(mind_articles[:60], refresher=refresher_lock(engine.settings))
        assert searches  # its refresher may store a box at any time: each write queues what it may enter
    server.release()


def test_a_write_beside_a_refresher_queues_the_box_it_enters_though_no_box_is_stored_yet(tmp_path, embedder,
                                                                                        mind_articles, monkeypatch):
    from recommender.engine import Recommender

    with Recommender(make_settings(tmp_path), embedder=embedder) as engine:
        engine.upsert(mind_articles[:60])
        source = mind_articles[0]
        write_boxes = engine.store.write_boxes

        def a_write_meanwhile(*args: Any, **kwargs: Any) -> None:
            engine.upsert([replace(source, id="a-copy")])  # committed after the box was ranked, before it is stored
            write_boxes(*args, **kwargs)

        monkeypatch.setattr(engine.store, "write_boxes", a_write_meanwhile)
        engine.refresh_boxes([engine.store.get(source.id).key])
        assert engine.store.box(source.id).pending  # stored without the copy: queued again, not served as fresh


def test_a_list_carries_the_ids_it_names_stored_or_ranked_folded_reports_included(engine):
    """A CDN's surrogate keys are made from them (service.http_caching), not from the body parsed again."""
    lead = "The worst tide in fifty years flooded Venice on Tuesday night, submerging St Mark's Square."
    engine.upsert([Article(id="venice-1", title="Storm floods Venice: St Mark's Square under water", lead=lead),
                   Article(id="venice-2", title="Storm floods Venice: St. Mark's Square under water", lead=lead),
                   Article(id="venice-mayor", title="Venice mayor blames climate change as city counts flood damage",
                           lead="After the tide, the mayor of Venice asked Rome for help with the damage.")])
    refresh_queued(engine)
    for article_id in ("venice-mayor", SOURCE):
        stored = engine.stored_list_json(article_id, 8)
        ranked, _ = engine.list_body(article_id, SimilarQuery(mmr_lambda=0.9))
        for body in (stored, ranked):
            assert body is not None and body.ids == list_ids(json.loads(body))
    assert {"venice-1", "venice-2"} <= engine.stored_list_json("venice-mayor", 8).ids  # one of them folded
