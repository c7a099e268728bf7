"""The files a data dir derives from its store: the FAISS checkpoint and its meta, the lexical counts and weights,
the rows file. Each records the store it was derived from (``index.files.check_store``) and the store sequence it
reflects. A store put back behind them (restored from a backup, an older copy of its file) keeps its id and is
told by its sequence instead: a file ahead of the store holds writes the store no longer has, under keys the store
will give again to other articles."""

from __future__ import annotations

from pathlib import Path

from index.layout import checkpoint_seq, meta_path
from recommender.arrayfile import saved_seq
from recommender.settings import Settings


def derived_seqs(settings: Settings) -> dict[Path, int]:
    """The store sequence each derived file of the data dir records (-1: none there, or none to read)."""
    arrays = (settings.lexical_path, settings.lexical_weights_path, settings.rows_path)
    return {settings.index_path: checkpoint_seq(settings.index_path), **{path: saved_seq(path) for path in arrays}}


def remove_derived(settings: Settings) -> None:
    """Remove every derived file of the data dir: each is derived again from the store, as a missing one is."""
    for path in (settings.index_path, meta_path(settings.index_path), settings.lexical_path,
                 settings.legacy_lexical_path, settings.lexical_weights_path, settings.rows_path):
        path.unlink(missing_ok=True)
