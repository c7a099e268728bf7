"""Moving a SQLite data dir's store into PostgreSQL: every table copied as it is, in one transaction."""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from recommender.store.boxes import box_text
from recommender.store.postgres import TABLES, PostgresStore
from recommender.store.sql import Connection
from recommender.store.sqlite import SQLiteStore

COPY_BATCH = 1000


def migrate(sqlite_path: Path, url: str, progress: bool = False) -> dict[str, int]:
    """Copy the store at ``sqlite_path`` into the empty PostgreSQL database at ``url``; returns rows per table.

    Keys, the write sequence, the store's id, stored boxes and the refresh queue are kept, so the data dir's index
    files stay valid for a replica on the new database, and nothing is recomputed. All of it or (after a failure) none."""
    if not Path(sqlite_path).is_file():
        raise FileNotFoundError(f"no SQLite store at {sqlite_path}: point RECOMMENDER_DATA_DIR (or --from) at the "
                                "data dir to migrate")
    source, target = SQLiteStore(sqlite_path), PostgresStore(url)
    try:
        if target.count() or target.meta("seq") is not None:
            raise ValueError(f"the database at {target.where} already holds a store: migrate into an empty database")
        total = sum(source.read(f"SELECT count(*) FROM {table}")[0][0] for table in TABLES)
        copied: dict[str, int] = {}
        with tqdm(total=total, unit="row", desc="migrate", disable=not progress) as bar, \
                target.write_lock, target.transaction() as conn:
            source._reader.execute("BEGIN")  # one snapshot of every table, whatever writes meanwhile
            # The store's id (``SQLStore._identity``) is the source's: the data dir's files, which record it, stay
            # valid on the new database.
            conn.execute("DELETE FROM meta WHERE name = 'store_id'")
            for table in TABLES:
                copied[table] = _copy_table(source, conn, table, bar)
            # Keys are never reused: the identity goes on after the highest key SQLite ever gave.
            highest = source.read("SELECT max(k) FROM (SELECT max(key) AS k FROM articles UNION ALL SELECT max(key) "
                                  "FROM tombstones UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'articles')")
            if highest[0][0]:
                conn.execute("SELECT setval(pg_get_serial_sequence('articles', 'key'), ?)", (int(highest[0][0]),))
            events = source.read("SELECT max(id) FROM events")
            if events[0][0]:  # the same for the events' ids
                conn.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), ?)", (int(events[0][0]),))
            source._reader.execute("COMMIT")
        return copied
    finally:
        source.close()
        target.close()


def _copy_table(source: SQLiteStore, conn: Connection, table: str, bar: tqdm) -> int:
    """Copy one table's rows inside the caller's transaction; returns how many."""
    cursor = source._reader.execute(f"SELECT * FROM {table}")
    columns = [d[0] for d in cursor.description]
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    at = columns.index("items") if table == "boxes" else None
    copied = 0
    while rows := cursor.fetchmany(COPY_BATCH):
        values = [tuple(row) for row in rows]
        if at is not None:  # SQLite's compressed boxes as text: PostgreSQL compresses them itself
            values = [(*row[:at], box_text(row[at]), *row[at + 1:]) for row in values]
        conn.executemany(insert, values)
        copied += len(rows)
        bar.update(len(rows))
    return copied
