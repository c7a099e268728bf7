"""The refresher of a server: batches sized by the time boxes take, and the data dir read through once at start by
the process that computes the boxes."""

import logging
import time

from recommender.engine import Recommender
from recommender.refresher import BatchSize, Refresher
from tests.conftest import make_settings


def test_a_batch_holds_about_its_seconds_of_boxes_at_the_time_boxes_took_so_far():
    batch = BatchSize(0.2, 64)
    assert batch.next() == BatchSize.START  # nothing timed yet
    batch.took(10, 0.2)  # 20 ms a box
    assert batch.next() == 10
    batch.took(10, 0.05)  # faster now: the average moves towards 5 ms, not all the way
    assert 10 < batch.next() < 40
    batch.took(1, 10.0)
    assert batch.next() == 1  # never none
    batch.took(0, 0.0)  # nothing stored: nothing learnt
    assert batch.next() == 1
    quick = BatchSize(0.2, 64)
    quick.took(64, 0.01)
    assert quick.next() == 64  # never more than the most


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_refresher_whose_boxes_outlast_its_budget_takes_one_a_transaction_and_drains_the_queue(data_dir, embedder):
    settings = make_settings(data_dir, refresh_batch_s=1e-6)
    with Recommender(settings, embedder=embedder) as engine:
        engine.store.enqueue(engine.store.published_keys()[:20].tolist())
        batches: list[int] = []
        refresh = engine.boxes.refresh

        def counted(keys):
            batches.append(len(keys))
            return refresh(keys)

        engine.boxes.refresh = counted  # type: ignore[method-assign]
        refresher = Refresher(engine).start()
        try:
            wait_for(lambda: engine.store.queue_length() == 0)
        finally:
            refresher.stop()
    assert batches == [BatchSize.START] + [1] * (20 - BatchSize.START)


def test_the_refresher_that_computes_boxes_reads_the_data_dir_through_in_the_background(engine, caplog):
    with caplog.at_level(logging.INFO, logger="recommender"):
        refresher = Refresher(engine).start()
        try:
            wait_for(lambda: "into the page cache" in caplog.text)
        finally:
            refresher.stop()


def test_a_read_worker_leaves_the_read_through_to_the_refresher_and_so_does_a_server_told_not_to(engine,
                                                                                                monkeypatch):
    calls = []
    monkeypatch.setattr(engine.following, "read_through", lambda stop: calls.append(1))
    Refresher(engine, boxes=False).start().stop()
    monkeypatch.setattr(engine, "settings", engine.settings.model_copy(update={"read_through": False}))
    Refresher(engine).start().stop()
    assert calls == []
    monkeypatch.setattr(engine, "settings", engine.settings.model_copy(update={"read_through": True}))
    Refresher(engine).start().stop()
    wait_for(lambda: calls == [1])  # the check above is no accident of timing
