"""Editors' say over the boxes: an article box's pins and blocks, and articles blocked from every box."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from recommender.overrides import BoxOverrides, OverrideChange, Pin
from service.deps import ArticleId, Editor, Engine, Token, Writer
from service.errors import NotFound, Unprocessable, error_responses
from service.schemas import BlockIn, BoxOverridesIO, BoxOverridesPut, OverrideChangeOut, PinIn

HistoryLimit = Annotated[int, Query(ge=1, le=1000, description="The latest changes, newest first.")]

router = APIRouter(tags=["editorial"])


@router.get("/articles/{article_id}/overrides", response_model=BoxOverridesIO, responses=error_responses(404, 422))
def get_overrides(article_id: ArticleId, engine: Engine, editor: Editor) -> BoxOverridesIO:
    """An article box's pins and blocks; those of an unpublished article are a 404 but for the editor."""
    box = engine.box_overrides(article_id, editor)
    return BoxOverridesIO(pins=[PinIn(id=p.item_id, position=p.position) for p in box.pins],
                          blocks=sorted(box.blocks))


@router.put("/articles/{article_id}/overrides", response_model=BoxOverridesIO, dependencies=[Writer],
            responses=error_responses(400, 401, 403, 404, 408, 413, 415, 422))
def put_overrides(article_id: ArticleId, body: BoxOverridesPut, engine: Engine) -> BoxOverridesIO:
    """Replace the box's pins and blocks. A new pin must name a stored article (a pin kept from before may
    name one since taken down: it shows nothing, and the editor can still save the box's other changes)."""
    kept = {p.item_id for p in engine.box_overrides(article_id).pins}
    new = {p.id for p in body.pins} - kept
    stored = engine.store.stored(new) if new else {}
    unknown = [(n, p.id) for n, p in enumerate(body.pins) if p.id in new and p.id not in stored]
    if unknown:
        raise Unprocessable(
            "no article " + ", ".join(repr(i) for _, i in unknown) + ": pin an article that exists (find it by "
            "its title or id first)", [{"type": "value_error", "loc": ["body", "pins", n, "id"],
                                        "msg": "no such article"} for n, _ in unknown])
    engine.set_box_overrides(article_id, BoxOverrides(
        pins=tuple(Pin(p.id, p.position) for p in body.pins), blocks=frozenset(body.blocks)),
        body.editor, body.reason)
    return body


def history_out(changes: list[OverrideChange]) -> list[OverrideChangeOut]:
    return [OverrideChangeOut.model_validate(c, from_attributes=True) for c in changes]


@router.get("/articles/{article_id}/overrides/history", response_model=list[OverrideChangeOut],
            dependencies=[Token], responses=error_responses(401, 403, 404, 422))
def get_overrides_history(article_id: ArticleId, engine: Engine, editor: Editor,
                          limit: HistoryLimit = 100) -> list[OverrideChangeOut]:
    """Who pinned, unpinned, blocked or unblocked what in an article's box, when and why, newest first (the
    token, when one is set: it names editors)."""
    return history_out(engine.override_history(article_id, limit, editor))


@router.get("/blocked")
def get_blocked(engine: Engine) -> dict[str, str]:
    """Articles kept out of every box, with the reason."""
    return engine.blocked_everywhere()


@router.put("/blocked/{item_id}", status_code=204, dependencies=[Writer],
            responses=error_responses(400, 401, 403, 408, 413, 415, 422))
def put_blocked(item_id: ArticleId, body: BlockIn, engine: Engine) -> None:
    engine.block_everywhere(item_id, body.reason, body.editor)


@router.get("/blocked/history", response_model=list[OverrideChangeOut], dependencies=[Token],
            responses=error_responses(401, 403, 422))
def get_blocked_history(engine: Engine, limit: HistoryLimit = 100) -> list[OverrideChangeOut]:
    """Who blocked or unblocked what from every box, when and why, newest first (the token, when one is set)."""
    return history_out(engine.override_history(None, limit))


@router.delete("/blocked/{item_id}", status_code=204, dependencies=[Writer],
               responses=error_responses(401, 403, 404, 422))
def delete_blocked(item_id: ArticleId, engine: Engine,
                   by: Annotated[str, Query(alias="editor", max_length=200, description="Who unblocks it.")] = "",
                   reason: Annotated[str, Query(max_length=2000)] = "") -> None:
    if not engine.unblock_everywhere(item_id, by, reason):
        raise NotFound(f"{item_id!r} is not blocked")
