"""Full-text search over a Store's FTS5 tables (memory, knowledge base): a user's search text
→ a MATCH expression that cannot be a syntax error (unless asked for FTS5 syntax), and that
syntax's errors → HTTP 400 instead of a database error."""
from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from .server import HTTPError

if TYPE_CHECKING:
    from .store import Store


FTS_MODES = ("all", "any", "fts5")


def fts_query(q: str, mode: str = "all", max_terms: int = 32) -> str:
    """A user's search text → an FTS5 MATCH expression.

    all/any: every word is quoted (FTS5 operators and punctuation are only words then, so no
    input is a syntax error); a trailing * keeps prefix search ("embed*"); `all` needs every
    word, `any` one of them. fts5: the text is FTS5 query syntax as is (AND/OR/NOT, NEAR,
    column filters); its syntax errors become 400 where the query runs (fts_error)."""
    if mode not in FTS_MODES:
        raise HTTPError(400, f"?mode={mode!r} is invalid; allowed: {', '.join(FTS_MODES)}")
    q = q.strip()
    if not q:
        raise HTTPError(400, "?q= is empty; allowed: one or more words to search for")
    if len(q) > 1000:
        raise HTTPError(400, f"?q= has {len(q)} characters; allowed: at most 1000")
    if mode == "fts5":
        return q
    terms = []
    for w in q.split()[:max_terms]:
        prefix = w.endswith("*") and len(w) > 1
        w = w.rstrip("*") if prefix else w
        terms.append('"' + w.replace('"', '""') + '"' + ("*" if prefix else ""))
    return (" OR " if mode == "any" else " ").join(terms)


def fts_error(e: sqlite3.Error, mode: str) -> HTTPError | None:
    """A search query's own error → 400; else None (a real database problem). In fts5 mode
    the text is FTS5 syntax, so SQLITE_ERROR from the MATCH (syntax error, unterminated
    string, no such column ...) is the user's; in all/any mode every word is quoted and no
    input can cause one."""
    if mode == "fts5" and isinstance(e, sqlite3.OperationalError) and \
            getattr(e, "sqlite_errorname", "") == "SQLITE_ERROR":
        return HTTPError(400, f"bad search query: {e}; see "
                              "https://www.sqlite.org/fts5.html#full_text_query_syntax "
                              "or use ?mode=all")
    return None


def fts_search(store: Store, sql: str, args, mode: str) -> list:
    """Rows of a full-text query (one read transaction); a query FTS5 cannot parse is a 400
    (fts_error), anything else a database error as usual."""
    def rd(c):
        try:
            return c.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            err = fts_error(e, mode)
            if err is not None:
                raise err from None
            raise
    return store.read(rd)
