"""Experiments: define one (token), list them, and read one's report (token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.concurrency import run_in_threadpool

from recommender.report import experiment_report, parse_since
from recommender.specs import NAME, ExperimentSpec
from recommender.store.sql import now_ms
from service.deps import Engine, Token, Writer
from service.errors import NotFound, Unprocessable, error_responses
from service.schemas import ExperimentIn, ExperimentOut, ReportOut, utc_time

router = APIRouter(tags=["experiments"])

Name = Annotated[str, Path(pattern=NAME, description="a-z, 0-9, '-', '_' (≤ 40).")]


@router.put("/experiments/{name}", response_model=ExperimentOut, dependencies=[Writer],
            responses=error_responses(400, 401, 403, 408, 413, 415, 422))
def put_experiment(name: Name, body: ExperimentIn, engine: Engine) -> ExperimentOut:
    """Define or redefine an experiment; `active` (default) makes it split list requests from now on."""
    spec = ExperimentSpec.model_validate({"name": name, "variants": body.variants})
    return ExperimentOut.of(engine.define_experiment(spec, body.active))


@router.get("/experiments")
def list_experiments(engine: Engine) -> list[ExperimentOut]:
    """Every experiment defined over the API, the latest first, and the one in settings if any."""
    return [ExperimentOut.of(e) for e in engine.all_experiments()]


@router.get("/experiments/{name}", response_model=ReportOut, dependencies=[Token],
            responses=error_responses(401, 404, 422))
async def get_experiment(name: Name, engine: Engine, since: Annotated[str | None, Query(
        max_length=40, description="7d, 12h or an ISO 8601 date or time; default: the experiment's start.")] = None,
                         ) -> ReportOut:
    """The experiment and its report: impressions, clicks, CTR (and by position) per variant, each variant
    against the control with a 95 % interval and the test used. It reads every event since `since`: the token,
    when one is set."""
    experiment = engine.experiment(name)
    if experiment is None:
        raise NotFound(f"no experiment named {name!r}")
    try:
        start = parse_since(since, now_ms()) if since is not None else None
    except ValueError as exc:
        raise Unprocessable(str(exc), [{"type": "value_error", "loc": ["query", "since"], "msg": str(exc)}]) from None
    report = await run_in_threadpool(experiment_report, experiment, engine.event_store, start)
    return ReportOut(experiment=ExperimentOut.of(experiment), since=utc_time(report.since), test=report.test,
                     alpha=report.alpha, variants=report.variants, comparisons=report.comparisons)
