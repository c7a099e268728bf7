"""Kill rounds under load: each round SIGKILLs one process of `recommender serve --workers 2` picked at random
(the server itself, a read worker, the writer or the refresher) while readers, a writer and an event sender
run, then checks that a working server answers on the same port, that no acknowledged write or event batch was
lost and that no process was orphaned; prints the counts. The test suite runs 3 such rounds
(tests/service/test_reliability.py).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/kill.py [--rounds 20] [--seed 24]

Serves a copy of the ingested MIND slice that it builds first (the tests' 400 articles)."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.engine import Recommender  # noqa: E402
from recommender.loaders import raw_rows, read_articles  # noqa: E402
from recommender.refresher import refresh_queued  # noqa: E402
from tests.conftest import MIND_SAMPLE, SLICE, make_settings  # noqa: E402
from tests.service.conftest import Server  # noqa: E402
from tests.service.killrounds import ROLES, kill_rounds  # noqa: E402

TOKEN = "bench-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=24)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="kill-rounds-")) / "data"
    with Recommender(make_settings(data)) as engine:
        engine.upsert(list(read_articles(MIND_SAMPLE))[:SLICE])
        refresh_queued(engine)
    rows = [{k: v for k, v in r.items() if k in ("id", "title", "lead", "url", "section", "tags", "language")}
            for r in list(raw_rows(MIND_SAMPLE))[SLICE:SLICE + 40 * args.rounds]]
    rng = random.Random(args.seed)
    victims = [rng.choice(ROLES) for _ in range(args.rounds)]
    server = Server(data, RECOMMENDER_API_TOKEN=TOKEN, RECOMMENDER_WORKERS="2", RECOMMENDER_EVENTS_RATE_PER_S="10000",
                    RECOMMENDER_EVENTS_FLUSH_INTERVAL_S="0.05").start(timeout=300)
    try:
        tally = kill_rounds(server, TOKEN, rows, victims, seed=args.seed)
    finally:
        server.kill()
    print(f"kill rounds: {tally.line()}")


if __name__ == "__main__":
    main()
