"""Experiments as the engine offers them: the one running (kept current by ``recommender.following``), those
defined over the API or in settings, and defining one."""

from __future__ import annotations

import threading

from recommender.experiments import Experiment, ExperimentStore, named
from recommender.following import Following
from recommender.specs import ExperimentSpec


class Experimenting:
    def __init__(self, following: Following, experiments: ExperimentStore, write_lock: threading.RLock):
        self.following = following
        self.experiments = experiments
        self.configured = following.settings.experiment
        self.write_lock = write_lock

    @property
    def running(self) -> Experiment | None:
        """The experiment that splits list requests now (activated over the API, else in settings), if any."""
        return self.following.experiment

    def experiment(self, name: str) -> Experiment | None:
        """An experiment by name: defined over the API, or the one in settings."""
        return named(self.experiments, self.configured, name)

    def all(self) -> list[Experiment]:
        """Every experiment defined over the API, the latest first, then the one in settings (if not redefined)."""
        stored = self.experiments.all()
        configured = self.configured
        if configured is not None and all(e.name != configured.name for e in stored):
            stored.append(self.experiment(configured.name) or Experiment(configured))
        return stored

    def define(self, spec: ExperimentSpec, active: bool = True) -> Experiment:
        """Define or redefine an experiment (activating it stops the running one); every process follows."""
        with self.write_lock:
            experiment = self.experiments.put(spec, active)
            self.following.follow()
            return experiment
