"""MemoryClient (5713/6713): memory items in namespaces, with full-text search (memory.db).

    PUT    /items/{namespace}/{key}    {"value": <any JSON>, "tags": [..]?}  → 201 new, 200 replaced
    POST   /items/{namespace}          {"value": ..., "tags": ..}  → 201 with a generated key
    GET    /items/{namespace}/{key}    the item (404 if absent)
    DELETE /items/{namespace}/{key}    → {"deleted": true} (404 if absent)
    GET    /items/{namespace}          keys in order ?limit ?after=KEY ?prefix= ?values=true
    DELETE /items/{namespace}          delete the whole namespace
    GET    /namespaces                 namespaces with item counts
    GET    /search?q=...               ranked hits with snippets ?namespace ?tag ?limit
                                       ?mode=all|any|fts5 (see fts.fts_query)
    POST   /task                       {"type": "memory", "data": {"op": "put"|"get"|"delete"|
                                        "search"|"list", "namespace", "key", "value", "q", ...}}

Bounds (environment): MEMORYCLIENT_MAX_VALUE_BYTES (64 KiB of JSON per value),
MEMORYCLIENT_MAX_ITEMS (100,000 items: a put of a new key beyond it is 507 and stores
nothing), STATE_DB_MAX_MB (512). Bad input is a 400 naming the field. A 2xx answer is
sent only after the write committed (synchronous=FULL, docs/STATE.md).

Search indexes the key, the text found in the value (every string in it, recursively) and
the tags, with FTS5 (porter stemming: "running" finds "run"); ranked by bm25, tags and key
weighing more than the value text.
"""
from __future__ import annotations

import json
import os
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

DB_FILE = "memory.db"
NS_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

MIGRATIONS = [
    """
    CREATE TABLE items(
        id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, key TEXT NOT NULL,
        value TEXT NOT NULL, text TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL, updated REAL NOT NULL, version INTEGER NOT NULL DEFAULT 1,
        UNIQUE(namespace, key));
    CREATE VIRTUAL TABLE items_fts USING fts5(
        key, text, tags, content='items', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2');
    CREATE TRIGGER items_fts_ins AFTER INSERT ON items BEGIN
        INSERT INTO items_fts(rowid, key, text, tags) VALUES (new.id, new.key, new.text, new.tags);
    END;
    CREATE TRIGGER items_fts_del AFTER DELETE ON items BEGIN
        INSERT INTO items_fts(items_fts, rowid, key, text, tags)
        VALUES ('delete', old.id, old.key, old.text, old.tags);
    END;
    CREATE TRIGGER items_fts_upd AFTER UPDATE ON items BEGIN
        INSERT INTO items_fts(items_fts, rowid, key, text, tags)
        VALUES ('delete', old.id, old.key, old.text, old.tags);
        INSERT INTO items_fts(rowid, key, text, tags) VALUES (new.id, new.key, new.text, new.tags);
    END;
    """ + counter_sql("items", "items"),
]


def extract_text(value, out: list | None = None) -> str:
    """Every string inside a JSON value, in document order (what search looks at)."""
    top = out is None
    out = [] if out is None else out
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            extract_text(v, out)
    elif isinstance(value, list):
        for v in value:
            extract_text(v, out)
    return "\n".join(out) if top else ""


def check_key(key: str) -> str:
    if not 1 <= len(key) <= 256:
        raise HTTPError(400, f"key has {len(key)} characters; allowed: 1-256")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise HTTPError(400, "key has control characters; allowed: printable characters")
    return key


def check_namespace(ns: str) -> str:
    return field_str({"namespace": ns}, "namespace", max_len=64, allowed=NS_CHARS)


def new_key() -> str:
    """Sortable by creation time, unique without coordination."""
    return f"{time.time_ns() // 1000:016d}-{os.urandom(4).hex()}"


class MemoryDB:
    def __init__(self, store: Store, max_items: int, max_value_bytes: int):
        self.store = store
        self.max_items = max_items
        self.max_value_bytes = max_value_bytes

    def _encode(self, body: dict):
        if "value" not in body:
            raise HTTPError(400, '"value" is missing; allowed: any JSON value')
        unknown = set(body) - {"value", "tags"}
        if unknown:
            raise HTTPError(400, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: "
                                 "value, tags")
        value = json.dumps(body["value"], separators=(",", ":"), ensure_ascii=False)
        size = len(value.encode())
        if size > self.max_value_bytes:
            raise HTTPError(413, f'"value" is {size} bytes as JSON; allowed: at most '
                                 f"{self.max_value_bytes} (MEMORYCLIENT_MAX_VALUE_BYTES)")
        tags = field_tags(body)
        return value, extract_text(body["value"]), tags

    def put(self, ns: str, key: str, body: dict) -> tuple[bool, dict]:
        value, text, tags = self._encode(body)
        tag_text = " ".join(tags)
        now = time.time()

        def tx(c):
            row = c.execute("SELECT id, version, created FROM items WHERE namespace = ? AND "
                            "key = ?", (ns, key)).fetchone()
            if row is None:
                n = count(c, "items")
                if n >= self.max_items:
                    raise StoreFull(f"memory is full: {n} items (MEMORYCLIENT_MAX_ITEMS="
                                    f"{self.max_items}); delete items first; nothing stored")
                c.execute("INSERT INTO items(namespace, key, value, text, tags, created, "
                          "updated) VALUES (?,?,?,?,?,?,?)",
                          (ns, key, value, text, tag_text, now, now))
                return True, 1, now
            c.execute("UPDATE items SET value = ?, text = ?, tags = ?, updated = ?, "
                      "version = version + 1 WHERE id = ?", (value, text, tag_text, now,
                                                             row["id"]))
            return False, row["version"] + 1, row["created"]
        created, version, first = self.store.write(tx)
        return created, {"namespace": ns, "key": key, "version": version, "created": first,
                         "updated": now, "tags": tags}

    def get(self, ns: str, key: str) -> dict:
        rows = self.store.query("SELECT * FROM items WHERE namespace = ? AND key = ?",
                                (ns, key))
        if not rows:
            raise HTTPError(404, f"no item {key!r} in namespace {ns!r}")
        return _item(rows[0], True)

    def delete(self, ns: str, key: str) -> dict:
        n = self.store.write(lambda c: c.execute(
            "DELETE FROM items WHERE namespace = ? AND key = ?", (ns, key)).rowcount)
        if not n:
            raise HTTPError(404, f"no item {key!r} in namespace {ns!r}")
        return {"deleted": True, "namespace": ns, "key": key}

    def delete_namespace(self, ns: str) -> dict:
        n = self.store.write(lambda c: c.execute(
            "DELETE FROM items WHERE namespace = ?", (ns,)).rowcount)
        return {"deleted": n, "namespace": ns}

    def list(self, ns: str, limit: int, after: str = "", prefix: str = "",
             values: bool = False) -> dict:
        sql = "SELECT * FROM items WHERE namespace = ? AND key > ?"
        args: list = [ns, after]
        if prefix:  # key range [prefix, prefix + U+10FFFF): uses the (namespace, key) index
            sql += " AND key >= ? AND key < ?"
            args += [prefix, prefix + "\U0010ffff"]
        rows = self.store.query(sql + " ORDER BY key LIMIT ?", args + [limit + 1])
        more = len(rows) > limit
        items = [_item(r, values) for r in rows[:limit]]
        out = {"namespace": ns, "count": len(items), "items": items}
        if more:
            out["next_after"] = items[-1]["key"]
        return out

    def namespaces(self) -> builtins.list:
        rows = self.store.query(
            "SELECT namespace, count(*) AS n, sum(length(value)) AS bytes, max(updated) AS u "
            "FROM items GROUP BY namespace ORDER BY namespace")
        return [{"namespace": r["namespace"], "items": r["n"], "value_bytes": r["bytes"],
                 "updated": r["u"]} for r in rows]

    def search(self, q: str, mode: str = "all", ns: str | None = None, tag: str | None = None,
               limit: int = 20) -> builtins.list:
        match = fts_query(q, mode)
        sql = ("SELECT items.*, bm25(items_fts, 3.0, 1.0, 3.0) AS score, "
               "snippet(items_fts, 1, '[', ']', '…', 16) AS snippet "
               "FROM items_fts CROSS JOIN items ON items.id = items_fts.rowid "
               "WHERE items_fts MATCH ?")
        args: list = [match]
        if ns:
            sql += " AND items.namespace = ?"
            args.append(ns)
        if tag:  # tags are stored space-separated (they hold no spaces): match a whole tag
            sql += " AND instr(' ' || items.tags || ' ', ' ' || ? || ' ') > 0"
            args.append(tag)
        sql += " ORDER BY score LIMIT ?"
        args.append(limit)
        rows = fts_search(self.store, sql, args, mode)
        return [dict(_item(r, True), score=round(-r["score"], 6), snippet=r["snippet"])
                for r in rows]

    def count(self) -> int:
        return self.store.read(lambda c: count(c, "items"))


def _item(r, with_value: bool) -> dict:
    d = {"namespace": r["namespace"], "key": r["key"],
         "tags": r["tags"].split() if r["tags"] else [], "version": r["version"],
         "created": r["created"], "updated": r["updated"]}
    if with_value:
        d["value"] = json.loads(r["value"])
    return d


class MemoryClient(Agent):
    def on_start(self) -> None:
        env = self.config.env
        self.store = agent_store(self.config, DB_FILE, MIGRATIONS, log=self.log)
        # POST /task with an Idempotency-Key: the writes, the key and the answer commit
        # together, so a retry after a crash answers the first result (idempotency.py)
        self.idempotency_store = self.store
        self.db = MemoryDB(self.store,
                           env.integer("MEMORYCLIENT_MAX_ITEMS", 100_000, 1),
                           env.integer("MEMORYCLIENT_MAX_VALUE_BYTES", 65536, 16, 1 << 20))

    def on_stop(self) -> None:
        self.store.close()

    # ------------------------------------------------------------ HTTP
    @route("PUT", "/items/{namespace}/{key}")
    def put_item(self, request):
        ns, key = check_namespace(request.params["namespace"]), check_key(request.params["key"])
        created, item = self.db.put(ns, key, need_object(request.json()))
        return (201 if created else 200), item

    @route("POST", "/items/{namespace}")
    def add_item(self, request):
        ns = check_namespace(request.params["namespace"])
        _, item = self.db.put(ns, new_key(), need_object(request.json()))
        return 201, item

    @route("GET", "/items/{namespace}/{key}")
    def get_item(self, request):
        return self.db.get(check_namespace(request.params["namespace"]),
                           check_key(request.params["key"]))

    @route("DELETE", "/items/{namespace}/{key}", mutating=True)
    def delete_item(self, request):
        return self.db.delete(check_namespace(request.params["namespace"]),
                              check_key(request.params["key"]))

    @route("GET", "/items/{namespace}")
    def list_items(self, request):
        q = check_query(request, ("limit", "after", "prefix", "values"))
        values = q.get("values", "false").lower()
        if values not in ("true", "false", "1", "0"):
            raise HTTPError(400, f"?values={values!r}; allowed: true or false")
        return self.db.list(check_namespace(request.params["namespace"]),
                            query_int(request, "limit", 100, 1, 1000), q.get("after", ""),
                            q.get("prefix", ""), values in ("true", "1"))

    @route("DELETE", "/items/{namespace}", mutating=True)
    def delete_namespace(self, request):
        return self.db.delete_namespace(check_namespace(request.params["namespace"]))

    @route("GET", "/namespaces")
    def namespaces(self, request):
        return {"namespaces": self.db.namespaces()}

    @route("GET", "/search")
    def search(self, request):
        q = check_query(request, ("q", "mode", "namespace", "tag", "limit"))
        ns = check_namespace(q["namespace"]) if q.get("namespace") else None
        hits = self.db.search(q.get("q", ""), q.get("mode", "all"), ns, q.get("tag") or None,
                              query_int(request, "limit", 20, 1, 200))
        return {"query": q.get("q"), "count": len(hits), "hits": hits}

    def handle_task(self, task: dict):
        d = need_object(task.get("data"), '"data"')
        op = d.get("op")
        if op == "search":
            ns = d.get("namespace")
            return {"hits": self.db.search(
                field_str(d, "q", max_len=1000), field_str(d, "mode", required=False,
                                                           default="all"),
                check_namespace(ns) if ns is not None else None,
                field_str(d, "tag", required=False, max_len=64),
                field_int(d, "limit", default=20, lo=1, hi=200))}
        ns = check_namespace(field_str(d, "namespace", max_len=64))
        if op == "list":
            return self.db.list(ns, 100)
        key = check_key(field_str(d, "key", max_len=256))
        if op == "put":
            return self.db.put(ns, key, {k: v for k, v in d.items()
                                         if k in ("value", "tags")})[1]
        if op == "get":
            return self.db.get(ns, key)
        if op == "delete":
            self.authorize()  # the same rule as DELETE /items/NS/KEY
            return self.db.delete(ns, key)
        raise HTTPError(400, f"unknown op {op!r}; allowed: put, get, delete, search, list")

    # ------------------------------------------------------------ health and metrics
    def health_checks(self) -> dict:
        return {"database": self.store.health()}

    def health_info(self) -> dict:
        return {"items": self.db.count(), "max_items": self.db.max_items}

    def metrics_text(self) -> str:
        lines = self.store.metrics_lines("unified_memory")
        lines += ["# HELP unified_memory_items Memory items stored.",
                  "# TYPE unified_memory_items gauge", f"unified_memory_items {self.db.count()}"]
        return "\n".join(lines) + "\n"


AGENT = MemoryClient
