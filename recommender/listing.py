"""The JSON of a "Similar news" list: one function for an item, one for the list, used by the stored boxes and
the lists ranked on demand alike, so both answer the same bytes."""

from __future__ import annotations

import hashlib
import json
import math
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from recommender.analysis import ANALYZER_VERSION
from recommender.article import Article, excerpt
from recommender.rank import Ranking, Recommendation

# The shape of an item's JSON. Stored boxes hold items as JSON: a box written in another shape (or with another
# excerpt length) is queued for a refresh on start and never served until then (``Recommender``). Bump it with
# every change of ``item_json``'s output.
ITEM_FORMAT = 3  # 2: excerpt and image_credit; items stored as lines (store.stored_box); 3: reason


def box_format(excerpt_chars: int, ranking: Ranking) -> str:
    """What a stored box depends on besides its articles: the item shape, the excerpt length, the ranking's values
    and the text analysis (a box stored under others is recomputed before it is served again)."""
    rules = hashlib.blake2b(repr(ranking).encode(), digest_size=6).hexdigest()
    return f"items-v{ITEM_FORMAT};excerpt={excerpt_chars};ranking={rules};analysis={ANALYZER_VERSION}"


def _timestamp(value: datetime | None) -> str | None:
    # The format pydantic writes for an aware datetime (UTC as "Z"): what the API returned before boxes.
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _report(a: Article) -> dict[str, str | None]:
    return {"id": a.id, "title": a.title, "url": a.url, "published_at": _timestamp(a.published_at)}


def _compact(value: dict[str, Any] | list[Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# An article's own fields read the same in every list it is in: the ~20 boxes a new article's write refreshes
# share most of their items, and the excerpt's HTML stripping was a tenth of a box's refresh. Kept per Article
# object (the row table hands every list the same one until the article is written again; hashing an article's
# whole text to find it cost more than it saved), through a weak reference: the cache never keeps an article
# (and its body) alive.
_FIELDS: dict[int, tuple[weakref.ref[Article], int, str]] = {}
_FIELDS_MAX = 16_384


def _article_fields(a: Article, excerpt_chars: int) -> str:
    """The item's fields that depend on the article only, as the start of its JSON object (no closing brace)."""
    held = _FIELDS.get(id(a))
    if held is not None and held[0]() is a and held[1] == excerpt_chars:
        return held[2]
    text = _compact({**_report(a), "section": a.section, "image_url": a.image_url, "image_credit": a.image_credit,
                     "excerpt": excerpt(a, excerpt_chars)})[:-1]
    if len(_FIELDS) >= _FIELDS_MAX:
        _FIELDS.clear()
    _FIELDS[id(a)] = (weakref.ref(a), excerpt_chars, text)  # a dead article's id may be reused: checked above
    return text


def item_json(rec: Recommendation, excerpt_chars: int) -> str:
    """One list item as the API returns it (compact JSON, fields in the order of ``service.schemas.Item``)."""
    e = rec.explanation
    explanation = "null" if e is None else _compact(
        {"semantic": e.semantic, "lexical": e.lexical, "recency": e.recency,
         "diversity_penalty": e.diversity_penalty, "popularity": e.popularity})
    also = _compact([_report(r) for r in rec.also]) if rec.also else "[]"
    # The list's own fields written out, not dumped from a dict: the same bytes (a float as json writes it, its
    # repr) for a fifth of the cost, on each of a box's ~20 items.
    return (f'{_article_fields(rec.article, excerpt_chars)},"score":{_number(rec.score)},'
            f'"group_size":{int(rec.group_size)},"pinned":{"true" if rec.pinned else "false"},"also":{also},'
            f'"reason":{json.dumps(rec.reason)},"explanation":{explanation}}}')


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"a list's score must be a finite number, not {value!r}")
    return float.__repr__(float(value))


# The variant of a list outside any experiment: the default list (stored box or the same list ranked on demand),
# a list with the request's own options, a preview.
DEFAULT_VARIANT, CUSTOM_VARIANT, PREVIEW_VARIANT = "default", "custom", "preview"


def list_id(article_id: str | None, variant: str, items: str) -> str:
    """The id of a list as shown: a digest of its article, its variant and its items' bytes. The same list
    shown twice has the same id; any change of an item, its order or the limit gives another one, so a cached
    response can never carry the id of another list, and a stored box and the list ranked on demand agree."""
    key = f"{article_id}\x1f{variant}\x1f{items}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


class ListJson(bytes):
    """A list's response body, and the ids of the articles it names (``ids``: its article's, its items', the
    reports folded into them): a CDN's surrogate keys without parsing the body again (at 100k articles parsing it
    was a quarter of what a worker spends on a stored list)."""

    ids: frozenset[str]

    def __new__(cls, body: bytes, ids: Iterable[str]) -> ListJson:
        made = super().__new__(cls, body)
        made.ids = frozenset(ids)
        return made


def list_json(article_id: str | None, items: Sequence[str], variant: str = DEFAULT_VARIANT,
              ids: Iterable[str] = ()) -> ListJson:
    """The response body of a list, ``{"article_id", "list_id", "variant", "items": [...]}``, from items made by
    ``item_json``; ``ids``: those of the items and of the reports folded into them."""
    head = json.dumps(article_id, ensure_ascii=False)
    joined = ",".join(items)
    return ListJson((f'{{"article_id":{head},"list_id":"{list_id(article_id, variant, joined)}",'
                     f'"variant":"{variant}","items":[{joined}]}}').encode(),
                    (*ids, *([article_id] if article_id is not None else [])))
