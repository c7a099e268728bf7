"""Editorial overrides, stored beside the articles: pins and blocks per box, and blocks from every box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from recommender.store.boxes import enqueue_boxes, enqueue_holders, enqueue_purges
from recommender.store.side import SideStore
from recommender.store.sql import Connection, next_seq, now_ms, set_meta

Action = Literal["pin", "unpin", "block", "unblock"]
EVERY_BOX = ""  # the audit log's box of a block from every box


@dataclass(frozen=True, slots=True)
class Pin:
    item_id: str
    position: int  # 1 = top of the box


@dataclass(frozen=True, slots=True)
class BoxOverrides:
    """What editors set for one article's box."""

    pins: tuple[Pin, ...] = ()
    blocks: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who made an editorial change (the name the editor gave) and why; both may be empty."""

    editor: str = ""
    reason: str = ""


ANONYMOUS = Attribution()  # a change made without a name or a reason


@dataclass(frozen=True, slots=True)
class OverrideChange:
    """One change of a pin or block, as the audit log keeps it; ``box`` None = every box."""

    at: datetime
    box: str | None
    item_id: str
    action: Action
    position: int | None
    editor: str
    reason: str


def box_changes(before: BoxOverrides, after: BoxOverrides) -> list[tuple[str, Action, int | None]]:
    """What a replacement of a box's overrides changed: (item, action, pin position), pins first."""
    was = {p.item_id: p.position for p in before.pins}
    now = {p.item_id: p.position for p in after.pins}
    pinned: list[tuple[str, Action, int | None]] = [(i, "pin", pos) for i, pos in now.items() if was.get(i) != pos]
    return (pinned
            + [(i, "unpin", None) for i in was if i not in now]
            + [(i, "block", None) for i in sorted(after.blocks - before.blocks)]
            + [(i, "unblock", None) for i in sorted(before.blocks - after.blocks)])


def _log(conn: Connection, seq: int, box: str, changes: Sequence[tuple[str, Action, int | None]],
         by: Attribution) -> None:
    conn.executemany("INSERT INTO override_log (seq, at, box, item_id, action, position, editor, reason) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [(seq, now_ms(), box, item, action, position, by.editor, by.reason)
                      for item, action, position in changes])


class OverrideStore(SideStore):
    """The overrides' tables, in the article store's database (its connections, its write transactions)."""

    def box(self, article_id: str) -> BoxOverrides:
        return self._box(None, article_id)

    def _box(self, conn: Connection | None, article_id: str) -> BoxOverrides:
        """The box's overrides, read in ``conn``'s transaction (None: on the reader)."""
        sql = "SELECT item_id, position FROM box_overrides WHERE article_id = ? ORDER BY position, item_id"
        rows = self._store.read(sql, (article_id,)) if conn is None else conn.execute(sql, (article_id,)).fetchall()
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

    def history(self, box: str | None, limit: int) -> list[OverrideChange]:
        """The latest changes of an article's box (``box`` None: of the blocks from every box), newest first."""
        rows = self._store.read("SELECT at, item_id, action, position, editor, reason FROM override_log "
                                "WHERE box = ? ORDER BY seq DESC, item_id LIMIT ?", (box or EVERY_BOX, limit))
        return [OverrideChange(datetime.fromtimestamp(r[0] / 1000, UTC), box, r[1], r[2], r[3], r[4], r[5])
                for r in rows]

    def set_box(self, article_id: str, overrides: BoxOverrides, by: Attribution = ANONYMOUS) -> None:
        """Replace an article's pins and blocks in one transaction, which also queues its box for a refresh and
        logs what changed, by whom and why."""
        with self._store.write_lock, self._store.transaction() as conn:
            seq = next_seq(conn)
            self._changed(conn, seq, [article_id])
            _log(conn, seq, article_id, box_changes(self._box(conn, article_id), overrides), by)
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

    def block_everywhere(self, item_id: str, by: Attribution = ANONYMOUS) -> None:
        """Block an item (``by.reason`` is the reason shown); the same transaction queues the boxes that hold it
        and logs the block."""
        with self._store.write_lock, self._store.transaction() as conn:
            seq = next_seq(conn)
            self._changed(conn, seq, [item_id])
            _log(conn, seq, EVERY_BOX, [(item_id, "block", None)], by)
            conn.execute("INSERT INTO blocked_everywhere (item_id, reason) VALUES (?, ?) "
                         "ON CONFLICT(item_id) DO UPDATE SET reason=excluded.reason", (item_id, by.reason))
            enqueue_holders(conn, [r[0] for r in conn.execute("SELECT key FROM articles WHERE id = ?", (item_id,))],
                            seq)

    def unblock_everywhere(self, item_id: str, boxes: Sequence[int] = (), by: Attribution = ANONYMOUS) -> bool:
        """Unblock an item; the same transaction queues ``boxes`` (those it may enter again) and logs it."""
        with self._store.write_lock, self._store.transaction() as conn:
            found = conn.execute("DELETE FROM blocked_everywhere WHERE item_id = ?", (item_id,)).rowcount > 0
            if found:
                seq = next_seq(conn)
                # The boxes it may enter again: their lists at the edge go too (the item's own key is in none).
                entering = [r[0] for r in conn.execute(
                    f"SELECT id FROM articles WHERE key IN ({','.join('?' * len(boxes))})", list(boxes))] \
                    if boxes and self._store.purges else []
                self._changed(conn, seq, [item_id, *entering])
                _log(conn, seq, EVERY_BOX, [(item_id, "unblock", None)], by)
                enqueue_boxes(conn, boxes, seq)
            return found
