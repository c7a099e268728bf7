"""The editor's search: words anywhere in an article's id, title, lead and URL, in any order and case, through
the database's own full-text index (SQLite FTS5; PostgreSQL text search on a GIN index). Each word of the query
matches as a prefix ("ukrain" finds "Ukraine's"), and all must match."""

from __future__ import annotations

import re
import sqlite3

# A word: letters and digits of any script; anything else (spaces, punctuation, '/', '%', '_') separates words,
# as FTS5's unicode61 tokenizer and the translated PostgreSQL document below separate them.
_WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 16  # a pasted paragraph is not a search

# SQLite: an external-content FTS5 table over the articles (no second copy of the text), kept in step by
# triggers, so every write path (upsert, delete, a CLI ingest, another process) indexes alike.
SQLITE_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS articles_words USING fts5(
    id, title, lead, url, content='articles', content_rowid='key', tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS articles_words_insert AFTER INSERT ON articles BEGIN
    INSERT INTO articles_words (rowid, id, title, lead, url) VALUES (new.key, new.id, new.title, new.lead, new.url);
END;
CREATE TRIGGER IF NOT EXISTS articles_words_delete AFTER DELETE ON articles BEGIN
    INSERT INTO articles_words (articles_words, rowid, id, title, lead, url)
        VALUES ('delete', old.key, old.id, old.title, old.lead, old.url);
END;
CREATE TRIGGER IF NOT EXISTS articles_words_update AFTER UPDATE OF id, title, lead, url ON articles BEGIN
    INSERT INTO articles_words (articles_words, rowid, id, title, lead, url)
        VALUES ('delete', old.key, old.id, old.title, old.lead, old.url);
    INSERT INTO articles_words (rowid, id, title, lead, url) VALUES (new.key, new.id, new.title, new.lead, new.url);
END;
"""
SQLITE_MATCHES = "key IN (SELECT rowid FROM articles_words WHERE articles_words MATCH ?)"

# PostgreSQL: the 'simple' configuration (no stemming: ids, names and URLs are searched as written), over the
# text lower-cased and with a URL's punctuation made spaces (the default parser would keep "example.com/a-b" as
# one token). lower() folds Cyrillic under a UTF-8 ctype (any default cluster); under the C locale only ASCII.
POSTGRES_DOCUMENT = ("to_tsvector('simple', translate(lower(id || ' ' || title || ' ' || lead || ' ' || "
                     "coalesce(url, '')), '/.:-_=&#+', '         '))")
POSTGRES_SCHEMA = f"CREATE INDEX IF NOT EXISTS articles_words ON articles USING gin ({POSTGRES_DOCUMENT});"
POSTGRES_MATCHES = f"{POSTGRES_DOCUMENT} @@ to_tsquery('simple', ?)"


def query_words(text: str) -> list[str]:
    """The words of a search, lower-cased (none for a query of punctuation only: then a title substring)."""
    return [w.lower() for w in _WORD.findall(text)][:MAX_WORDS]


def sqlite_query(words: list[str]) -> str:
    """An FTS5 query: every word, as a prefix (a word holds no quote: it is letters and digits)."""
    return " AND ".join(f'"{w}"*' for w in words)


def postgres_query(words: list[str]) -> str:
    """A tsquery: every word, as a prefix."""
    return " & ".join(f"{w}:*" for w in words)


def create_sqlite_index(conn: sqlite3.Connection) -> None:
    """The FTS5 table and its triggers; one created on a store made before it is filled from the articles."""
    new = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'articles_words'").fetchone() is None
    conn.executescript(SQLITE_SCHEMA)
    if new:
        conn.execute("INSERT INTO articles_words (articles_words) VALUES ('rebuild')")
