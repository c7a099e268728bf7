"""Editorial overrides, stored beside the articles: pins and blocks per box, and blocks from every box."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from recommender.store import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS box_overrides (
    article_id TEXT NOT NULL,             -- whose box
    item_id    TEXT NOT NULL,             -- the item pinned or blocked
    position   INTEGER,                   -- 1-based slot for a pin; NULL for a block
    PRIMARY KEY (article_id, item_id)
);
CREATE TABLE IF NOT EXISTS blocked_everywhere (
    item_id TEXT PRIMARY KEY,
    reason  TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True, slots=True)
class Pin:
    item_id: str
    position: int  # 1 = top of the box


@dataclass(frozen=True, slots=True)
class BoxOverrides:
    """What editors set for one article's box."""

    pins: tuple[Pin, ...] = ()
    blocks: frozenset[str] = field(default_factory=frozenset)


class OverrideStore:
    def __init__(self, path: Path):
        self._conn = connect(path)
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def box(self, article_id: str) -> BoxOverrides:
        with self._lock:
            rows = self._conn.execute(
                "SELECT item_id, position FROM box_overrides WHERE article_id = ? ORDER BY position, item_id",
                (article_id,),
            ).fetchall()
        return BoxOverrides(
            pins=tuple(Pin(r["item_id"], r["position"]) for r in rows if r["position"] is not None),
            blocks=frozenset(r["item_id"] for r in rows if r["position"] is None),
        )

    def set_box(self, article_id: str, overrides: BoxOverrides) -> None:
        """Replace an article's pins and blocks in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM box_overrides WHERE article_id = ?", (article_id,))
                self._conn.executemany(
                    "INSERT INTO box_overrides (article_id, item_id, position) VALUES (?, ?, ?)",
                    [(article_id, p.item_id, p.position) for p in overrides.pins]
                    + [(article_id, item, None) for item in overrides.blocks],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def blocked_everywhere(self) -> dict[str, str]:
        with self._lock:
            rows = self._conn.execute("SELECT item_id, reason FROM blocked_everywhere ORDER BY item_id").fetchall()
        return {r["item_id"]: r["reason"] for r in rows}

    def block_everywhere(self, item_id: str, reason: str = "") -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO blocked_everywhere (item_id, reason) VALUES (?, ?)",
                               (item_id, reason))

    def unblock_everywhere(self, item_id: str) -> bool:
        with self._lock:
            return self._conn.execute("DELETE FROM blocked_everywhere WHERE item_id = ?", (item_id,)).rowcount > 0
