"""Experiments: variants of the list (each a named set of per-request options) and the stable split of readers.

A reader (the id the site passes, else a stand-in the service derives from the request) is hashed with the
experiment's name into [0, 1) and given the variant whose share covers that point: the same reader gets the
same variant for as long as the experiment's definition stays the same, and two experiments split readers
independently. A variant with no options shows the stored default box."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from recommender.listing import CUSTOM_VARIANT, DEFAULT_VARIANT
from recommender.specs import ExperimentSpec
from recommender.store.side import SideStore
from recommender.store.sql import next_seq, now_ms, set_meta

# What a list's `variant` (and an event's) may be: an experiment's `name/variant`, or one outside experiments.
VARIANT_LABEL = r"^([a-z0-9][a-z0-9_-]{0,39}/[a-z0-9][a-z0-9_-]{0,39}|default|custom|preview)$"


@dataclass(frozen=True, slots=True)
class Assignment:
    """What a list request gets: the variant label its list carries and the options it is ranked with
    (none: the stored default box)."""

    variant: str
    options: tuple[tuple[str, str], ...] = ()


NO_EXPERIMENT = Assignment(DEFAULT_VARIANT)
CUSTOM = Assignment(CUSTOM_VARIANT)


@dataclass(frozen=True, slots=True)
class Experiment:
    spec: ExperimentSpec
    active: bool = True
    started_at: int | None = None  # epoch ms; None: defined in settings (no start recorded)
    stopped_at: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def labels(self) -> list[str]:
        """The variant labels its lists and events carry, control first."""
        return [f"{self.name}/{v.name}" for v in self.spec.variants]

    def assign(self, reader: str) -> Assignment:
        """The reader's variant: the same reader, the same variant."""
        point = bucket(self.name, reader)
        edge = 0.0
        for variant in self.spec.variants:
            edge += variant.share
            if point < edge:
                break
        return Assignment(f"{self.name}/{variant.name}", variant.options.query())


def bucket(experiment: str, reader: str) -> float:
    """A point in [0, 1) fixed by the experiment's name and the reader (uniform over readers)."""
    digest = hashlib.blake2b(f"{experiment}\x1f{reader}".encode(errors="surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class ExperimentStore(SideStore):
    """Experiments defined over the API, beside the articles; at most one is active at a time."""

    def put(self, spec: ExperimentSpec, active: bool) -> Experiment:
        """Define (or redefine) an experiment; activating it stops the active one. A changed definition restarts
        it (readers may move between variants, so its report starts again); one transaction, which advances
        the store's sequence so that every process picks it up when it follows the store."""
        with self._store.write_lock, self._store.transaction() as conn:
            now = now_ms()
            before = conn.execute("SELECT definition, started_at FROM experiments WHERE name = ?",
                                  (spec.name,)).fetchone()
            definition = spec.model_dump_json()
            started = before[1] if before is not None and before[0] == definition else now
            if active:
                conn.execute("UPDATE experiments SET active = 0, stopped_at = ? WHERE active = 1 AND name <> ?",
                             (now, spec.name))
            conn.execute("""INSERT INTO experiments (name, definition, active, started_at, stopped_at)
                            VALUES (?, ?, ?, ?, ?)
                            ON CONFLICT (name) DO UPDATE SET definition = excluded.definition,
                              active = excluded.active, started_at = excluded.started_at,
                              stopped_at = excluded.stopped_at""",
                         (spec.name, definition, int(active), started, None if active else now))
            set_meta(conn, "experiments_seq", str(next_seq(conn)))
        return Experiment(spec, active, started, None if active else now)

    def get(self, name: str) -> Experiment | None:
        rows = self._store.read("SELECT * FROM experiments WHERE name = ?", (name,))
        return _experiment(rows[0]) if rows else None

    def all(self) -> list[Experiment]:
        rows = self._store.read("SELECT * FROM experiments ORDER BY started_at DESC, name")
        return [_experiment(row) for row in rows]

    def active(self) -> Experiment | None:
        rows = self._store.read("SELECT * FROM experiments WHERE active = 1")
        return _experiment(rows[0]) if rows else None

    def version(self) -> int:
        """The store sequence of the latest definition (followers reload when it moves)."""
        return int(self._store.meta("experiments_seq") or 0)


def _experiment(row: Any) -> Experiment:
    return Experiment(ExperimentSpec.model_validate(json.loads(row["definition"])), bool(row["active"]),
                      row["started_at"], row["stopped_at"])


def named(store: ExperimentStore, configured: ExperimentSpec | None, name: str) -> Experiment | None:
    """An experiment by name: defined over the API, else the one in settings (running unless one defined over
    the API is)."""
    stored = store.get(name)
    if stored is None and configured is not None and configured.name == name:
        return Experiment(configured, active=store.active() is None)
    return stored


def running(stored: Experiment | None, configured: ExperimentSpec | None) -> Experiment | None:
    """The experiment that splits traffic: the one activated over the API, else the one in settings."""
    if stored is not None:
        return stored
    return Experiment(configured) if configured is not None else None

