"""Editorial overrides, stored beside the articles: pins and blocks per box, and blocks from every box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from recommender.store.boxes import enqueue_boxes, enqueue_holders, enqueue_purges
from recommender.store.side import SideStore
from recommender.store.sql import Connection, next_seq, set_meta


@dataclass(frozen=True, slots=True)
class Pin:
    item_id: str
    position: int  # 1 = top of the box


@dataclass(frozen=True, slots=True)
class BoxOverrides:
    """What editors set for one article's box."""

    pins: tuple[Pin, ...] = ()
    blocks: frozenset[str] = field(default_factory=frozenset)


class OverrideStore(SideStore):
    """The overrides' tables, in the article store's database (its connections, its write transactions)."""

    def box(self, article_id: str) -> BoxOverrides:
        rows = self._store.read("SELECT item_id, position FROM box_overrides WHERE article_id = ? ORDER BY position, item_id",
                          (article_id,))
        return BoxOverrides(
            pins=tuple(Pin(r["item_id"], r["position"]) for r in rows if r["position"] is not None),
            blocks=frozenset(r["item_id"] for r in rows if r["position"] is None),
        )

    def all_blocks(self) -> dict[str, frozenset[str]]:
        """Every box's blocked items, by article id (read when another process changed overrides)."""
        out: dict[str, set[str]] = {}
        for r in self._store.read("SELECT article_id, item_id FROM box_overrides WHERE position IS NULL"):
            out.setdefault(r[0], set()).add(r[1])
        return {k: frozenset(v) for k, v in out.items()}

    def _changed(self, conn: Connection, seq: int, article_ids: Sequence[str]) -> None:
        """Mark the overrides changed at ``seq`` (followers reload them), and queue purges of the lists of
        ``article_ids`` when purges are on, inside the write's transaction."""
        set_meta(conn, "overrides_seq", str(seq))
        if self._store.purges:
            enqueue_purges(conn, article_ids, seq)

    def set_box(self, article_id: str, overrides: BoxOverrides) -> None:
        """Replace an article's pins and blocks in one transaction, which also queues its box for a refresh."""
        with self._store.write_lock, self._store.transaction() as conn:
            seq = next_seq(conn)
            self._changed(conn, seq, [article_id])
            conn.execute("DELETE FROM box_overrides WHERE article_id = ?", (article_id,))
            conn.executemany(
                "INSERT INTO box_overrides (article_id, item_id, position) VALUES (?, ?, ?)",
                [(article_id, p.item_id, p.position) for p in overrides.pins]
                + [(article_id, item, None) for item in overrides.blocks],
            )
            enqueue_boxes(conn, [r[0] for r in conn.execute("SELECT key FROM articles WHERE id = ? AND "
                                                            "status = 'published'", (article_id,))], seq)

    def blocked_everywhere(self) -> dict[str, str]:
        rows = self._store.read("SELECT item_id, reason FROM blocked_everywhere ORDER BY item_id")
        return {r["item_id"]: r["reason"] for r in rows}

    def block_everywhere(self, item_id: str, reason: str = "") -> None:
        """Block an item; the same transaction queues the boxes that hold it."""
        with self._store.write_lock, self._store.transaction() as conn:
            seq = next_seq(conn)
            self._changed(conn, seq, [item_id])
            conn.execute("INSERT INTO blocked_everywhere (item_id, reason) VALUES (?, ?) "
                         "ON CONFLICT(item_id) DO UPDATE SET reason=excluded.reason", (item_id, reason))
            enqueue_holders(conn, [r[0] for r in conn.execute("SELECT key FROM articles WHERE id = ?", (item_id,))],
                            seq)

    def unblock_everywhere(self, item_id: str, boxes: Sequence[int] = ()) -> bool:
        """Unblock an item; the same transaction queues ``boxes`` (those it may enter again)."""
        with self._store.write_lock, self._store.transaction() as conn:
            found = conn.execute("DELETE FROM blocked_everywhere WHERE item_id = ?", (item_id,)).rowcount > 0
            if found:
                seq = next_seq(conn)
                # The boxes it may enter again: their lists at the edge go too (the item's own key is in none).
                entering = [r[0] for r in conn.execute(
                    f"SELECT id FROM articles WHERE key IN ({','.join('?' * len(boxes))})", list(boxes))] \
                    if boxes and self._store.purges else []
                self._changed(conn, seq, [item_id, *entering])
                enqueue_boxes(conn, boxes, seq)
            return found
