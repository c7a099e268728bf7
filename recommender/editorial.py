"""Editors' pins and blocks: per box, and from every box; each write queues the boxes it changes."""

from __future__ import annotations

from recommender.lists import Lists
from recommender.overrides import ANONYMOUS, Attribution, BoxOverrides, OverrideChange
from recommender.writing import Writing


class Editorial:
    """Writes under the writers' lock, each followed at once: it takes effect on the next request."""

    def __init__(self, lists: Lists, writing: Writing):
        self.lists = lists
        self.writing = writing
        self.overrides = lists.overrides
        self.following = lists.following

    def box_overrides(self, article_id: str, include_unpublished: bool = True) -> BoxOverrides:
        """An article's pins and blocks; not found for the public while it is unpublished."""
        self.lists.get(article_id, include_unpublished)
        return self.overrides.box(article_id)

    def set_box_overrides(self, article_id: str, overrides: BoxOverrides, by: Attribution = ANONYMOUS) -> None:
        """Replace the pins and blocks of an article's box; takes effect on the next request. What changed is
        logged with ``by`` (who, why: ``history``)."""
        self.lists.get(article_id)
        with self.writing.write_lock:
            self.overrides.set_box(article_id, overrides, by)
            self.following.follow()

    def blocked_everywhere(self) -> dict[str, str]:
        return self.overrides.blocked_everywhere()

    def block_everywhere(self, item_id: str, by: Attribution = ANONYMOUS) -> None:
        """Keep an article out of every box (e.g. for legal reasons: ``by.reason``), whether or not it is indexed
        yet."""
        with self.writing.write_lock:
            self.overrides.block_everywhere(item_id, by)
            self.following.follow()

    def unblock_everywhere(self, item_id: str, by: Attribution = ANONYMOUS) -> bool:
        """Let an item back into the boxes; the boxes it may enter again are queued with the unblock."""
        with self.writing.write_lock:
            stored = self.lists.store.get(item_id)
            # As wide as a box's own candidates: an unblocked item may return as a box's section fallback, below
            # its nearest neighbours (rare enough to search widely; a new article's write searches the nearest).
            entering = self.writing.boxes_it_may_enter([(stored.article, stored.vector)],
                                                       self.lists.candidate_count(0)) \
                if stored is not None and stored.article.is_published else []
            found = self.overrides.unblock_everywhere(item_id, entering, by)
            self.following.follow()
            return found

    def history(self, article_id: str | None, limit: int = 100, include_unpublished: bool = True
                ) -> list[OverrideChange]:
        """Who changed an article's pins and blocks, when and why, newest first (None: the blocks from every
        box); an unpublished article's is not found for the public."""
        if article_id is not None:
            self.lists.get(article_id, include_unpublished)
        return self.overrides.history(article_id, limit)
