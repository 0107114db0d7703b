"""KnowledgeBase (5715/6715): documents with ranked full-text search (knowledge.db).

    POST   /documents            {"title", "body", "tags"?, "source"?}  → 201 {"id", ...}
    GET    /documents/{id}       the document
    PUT    /documents/{id}       replace title/body/tags/source (404 if absent)
    DELETE /documents/{id}       → {"deleted": true}
    GET    /documents            titles, newest first ?limit ?before_id ?tag
    GET    /search?q=...         ranked hits: id, title, tags, score, title_highlight and a
                                 snippet of the body around the matches
                                 ?tag ?limit ?mode=all|any|fts5 (see fts.fts_query)
    GET    /tags                 tags with document counts
    POST   /task                 {"type": "knowledge_search", "data": "query" |
                                  {"query", "limit"?, "tag"?, "mode"?}}

FTS5 with porter stemming over title, body and tags; ranking is bm25 with the title weighing
10x and tags 5x the body, so a document *about* the words comes before one that mentions
them. Bounds (environment): KB_MAX_BODY_CHARS (512 Ki characters), title 512
characters, 32 tags, KB_MAX_DOCUMENTS (100,000: beyond it a new document is 507),
STATE_DB_MAX_MB (1024). Bad input is a 400 naming the field.
"""
from __future__ import annotations

import time

# typing's constant without importing typing: the DB classes' method `list` hides the builtin
# in their annotations, which name it builtins.list
TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins

from unified_agents import Agent, HTTPError, route
from unified_agents.fts import fts_query, fts_search
from unified_agents.store import Store, StoreFull, agent_store, count, counter_sql
from unified_agents.validate import (check_query, field_int, field_str, field_tags, need_object,
                                     query_int)

DB_FILE = "knowledge.db"
FIELDS = ("title", "body", "tags", "source")

MIGRATIONS = [
    """
    CREATE TABLE documents(
        id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '', source TEXT,
        created REAL NOT NULL, updated REAL NOT NULL, version INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE document_tags(
        tag TEXT NOT NULL, doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        PRIMARY KEY(tag, doc_id)) WITHOUT ROWID;
    CREATE INDEX document_tags_doc ON document_tags(doc_id);
    CREATE VIRTUAL TABLE documents_fts USING fts5(
        title, body, tags, content='documents', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2');
    CREATE TRIGGER documents_fts_ins AFTER INSERT ON documents BEGIN
        INSERT INTO documents_fts(rowid, title, body, tags)
        VALUES (new.id, new.title, new.body, new.tags);
    END;
    CREATE TRIGGER documents_fts_del AFTER DELETE ON documents BEGIN
        INSERT INTO documents_fts(documents_fts, rowid, title, body, tags)
        VALUES ('delete', old.id, old.title, old.body, old.tags);
    END;
    CREATE TRIGGER documents_fts_upd AFTER UPDATE ON documents BEGIN
        INSERT INTO documents_fts(documents_fts, rowid, title, body, tags)
        VALUES ('delete', old.id, old.title, old.body, old.tags);
        INSERT INTO documents_fts(rowid, title, body, tags)
        VALUES (new.id, new.title, new.body, new.tags);
    END;
    """ + counter_sql("documents", "documents"),
]


class KnowledgeDB:
    def __init__(self, store: Store, max_documents: int, max_body_chars: int):
        self.store = store
        self.max_documents = max_documents
        self.max_body_chars = max_body_chars

    def _fields(self, d: dict) -> dict:
        need_object(d)
        unknown = set(d) - set(FIELDS)
        if unknown:
            raise HTTPError(400, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: "
                                 + ", ".join(FIELDS))
        return {"title": field_str(d, "title", max_len=512).strip() or _empty("title"),
                "body": field_str(d, "body", max_len=self.max_body_chars),
                "tags": field_tags(d),
                "source": field_str(d, "source", required=False, max_len=2048)}

    def add(self, d: dict) -> dict:
        f = self._fields(d)
        now = time.time()

        def tx(c):
            n = count(c, "documents")
            if n >= self.max_documents:
                raise StoreFull(f"the knowledge base is full: {n} documents "
                                f"(KB_MAX_DOCUMENTS={self.max_documents}); delete "
                                "documents first; nothing stored")
            doc_id = c.execute(
                "INSERT INTO documents(title, body, tags, source, created, updated) "
                "VALUES (?,?,?,?,?,?)", (f["title"], f["body"], " ".join(f["tags"]),
                                         f["source"], now, now)).lastrowid
            c.executemany("INSERT INTO document_tags(tag, doc_id) VALUES (?, ?)",
                          [(t, doc_id) for t in f["tags"]])
            return doc_id
        doc_id = self.store.write(tx)
        return {"id": doc_id, "title": f["title"], "tags": f["tags"], "version": 1,
                "created": now, "updated": now}

    def replace(self, doc_id: int, d: dict) -> dict:
        f = self._fields(d)
        now = time.time()

        def tx(c):
            row = c.execute("SELECT version, created FROM documents WHERE id = ?",
                            (doc_id,)).fetchone()
            if row is None:
                raise HTTPError(404, f"no document {doc_id}")
            c.execute("UPDATE documents SET title = ?, body = ?, tags = ?, source = ?, "
                      "updated = ?, version = version + 1 WHERE id = ?",
                      (f["title"], f["body"], " ".join(f["tags"]), f["source"], now, doc_id))
            c.execute("DELETE FROM document_tags WHERE doc_id = ?", (doc_id,))
            c.executemany("INSERT INTO document_tags(tag, doc_id) VALUES (?, ?)",
                          [(t, doc_id) for t in f["tags"]])
            return row["version"] + 1, row["created"]
        version, created = self.store.write(tx)
        return {"id": doc_id, "title": f["title"], "tags": f["tags"], "version": version,
                "created": created, "updated": now}

    def get(self, doc_id: int) -> dict:
        rows = self.store.query("SELECT * FROM documents WHERE id = ?", (doc_id,))
        if not rows:
            raise HTTPError(404, f"no document {doc_id}")
        return _doc(rows[0], True)

    def delete(self, doc_id: int) -> dict:
        n = self.store.write(lambda c: c.execute("DELETE FROM documents WHERE id = ?",
                                                 (doc_id,)).rowcount)
        if not n:
            raise HTTPError(404, f"no document {doc_id}")
        return {"deleted": True, "id": doc_id}

    def list(self, limit: int, before_id: int | None = None, tag: str | None = None) -> dict:
        sql = "SELECT d.* FROM documents d"
        args: list = []
        where = []
        if tag:
            sql += " JOIN document_tags t ON t.doc_id = d.id"
            where.append("t.tag = ?")
            args.append(tag)
        if before_id is not None:
            where.append("d.id < ?")
            args.append(before_id)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.store.query(sql + " ORDER BY d.id DESC LIMIT ?", args + [limit + 1])
        docs = [_doc(r, False) for r in rows[:limit]]
        out = {"count": len(docs), "documents": docs}
        if len(rows) > limit:
            out["next_before_id"] = docs[-1]["id"]
        return out

    def tags(self) -> builtins.list:
        rows = self.store.query("SELECT tag, count(*) AS n FROM document_tags GROUP BY tag "
                                "ORDER BY n DESC, tag LIMIT 1000")
        return [{"tag": r["tag"], "documents": r["n"]} for r in rows]

    def search(self, q: str, mode: str = "all", tag: str | None = None,
               limit: int = 10) -> builtins.list:
        match = fts_query(q, mode)
        sql = ("SELECT d.id, d.title, d.tags, d.source, d.updated, "
               "bm25(documents_fts, 10.0, 1.0, 5.0) AS score, "
               "highlight(documents_fts, 0, '[', ']') AS title_highlight, "
               "snippet(documents_fts, 1, '[', ']', '…', 24) AS snippet "
               "FROM documents_fts CROSS JOIN documents d ON d.id = documents_fts.rowid "
               "WHERE documents_fts MATCH ?")
        args: list = [match]
        if tag:
            sql += " AND d.id IN (SELECT doc_id FROM document_tags WHERE tag = ?)"
            args.append(tag)
        sql += " ORDER BY score LIMIT ?"
        args.append(limit)
        return [{"id": r["id"], "title": r["title"],
                 "tags": r["tags"].split() if r["tags"] else [], "source": r["source"],
                 "updated": r["updated"], "score": round(-r["score"], 6),
                 "title_highlight": r["title_highlight"], "snippet": r["snippet"]}
                for r in fts_search(self.store, sql, args, mode)]

    def count(self) -> int:
        return self.store.read(lambda c: count(c, "documents"))


def _empty(name: str):
    raise HTTPError(400, f'"{name}" is blank; allowed: a non-empty string')


def _doc(r, with_body: bool) -> dict:
    d = {"id": r["id"], "title": r["title"], "tags": r["tags"].split() if r["tags"] else [],
         "source": r["source"], "version": r["version"], "created": r["created"],
         "updated": r["updated"]}
    if with_body:
        d["body"] = r["body"]
    return d


def doc_id(request) -> int:
    v = request.params["id"]
    if not v.isdigit() or len(v) > 18:
        raise HTTPError(400, f"document id {v[:40]!r} is not a number; allowed: the id "
                             "POST /documents returned")
    return int(v)


class KnowledgeBase(Agent):
    def on_start(self) -> None:
        env = self.config.env
        self.store = agent_store(self.config, DB_FILE, MIGRATIONS, log=self.log, max_mb=1024)
        self.db = KnowledgeDB(self.store,
                              env.integer("KB_MAX_DOCUMENTS", 100_000, 1),
                              env.integer("KB_MAX_BODY_CHARS", 512 * 1024, 1, 16 << 20))

    def on_stop(self) -> None:
        self.store.close()

    @route("POST", "/documents")
    def add(self, request):
        return 201, self.db.add(request.json())

    @route("GET", "/documents/{id}")
    def get(self, request):
        return self.db.get(doc_id(request))

    @route("PUT", "/documents/{id}")
    def replace(self, request):
        return self.db.replace(doc_id(request), request.json())

    @route("DELETE", "/documents/{id}", mutating=True)
    def delete(self, request):
        return self.db.delete(doc_id(request))

    @route("GET", "/documents")
    def list_documents(self, request):
        q = check_query(request, ("limit", "before_id", "tag"))
        before = query_int(request, "before_id", 0, 1, 2**62) if q.get("before_id") else None
        return self.db.list(query_int(request, "limit", 50, 1, 1000), before,
                            q.get("tag") or None)

    @route("GET", "/tags")
    def tags(self, request):
        return {"tags": self.db.tags()}

    @route("GET", "/search")
    def search(self, request):
        q = check_query(request, ("q", "mode", "tag", "limit"))
        hits = self.db.search(q.get("q", ""), q.get("mode", "all"), q.get("tag") or None,
                              query_int(request, "limit", 10, 1, 100))
        return {"query": q.get("q"), "count": len(hits), "hits": hits}

    def handle_task(self, task: dict):
        d = task.get("data")
        if isinstance(d, str):
            d = {"query": d}
        d = need_object(d, '"data"')
        hits = self.db.search(field_str(d, "query", max_len=1000),
                              field_str(d, "mode", required=False, default="all"),
                              field_str(d, "tag", required=False, max_len=64),
                              field_int(d, "limit", default=10, lo=1, hi=100))
        return {"query": d["query"], "count": len(hits), "hits": hits}

    def health_checks(self) -> dict:
        return {"database": self.store.health()}

    def health_info(self) -> dict:
        return {"documents": self.db.count(), "max_documents": self.db.max_documents}

    def metrics_text(self) -> str:
        lines = self.store.metrics_lines("unified_knowledge")
        lines += ["# HELP unified_knowledge_documents Documents in the knowledge base.",
                  "# TYPE unified_knowledge_documents gauge",
                  f"unified_knowledge_documents {self.db.count()}"]
        return "\n".join(lines) + "\n"


AGENT = KnowledgeBase
