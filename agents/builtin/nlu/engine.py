"""The NLU engine: train(data) → Model, Model.parse(text) → intent, slots, confidence.

Two signals, both pure Python (no numpy/sklearn: cold start and memory, docs/NLU.md):

1. a TF-IDF classifier over word and character n-grams (1-NN cosine against every expanded
   example sentence, typed slots written as their type: "set a timer for <duration>"); the
   character n-grams carry typos and unseen inflections;
2. template alignment: the best way the intent's expanded templates cover the sentence
   (dynamic programming; a typed slot must parse as its type, a free-text slot takes any
   words), which also fills the slots.

Before both, words that are not in the vocabulary (template words, number words, list
values, catalog names) are corrected to the one vocabulary word within edit distance 1 (2
for long words). score = mean of the two; below FALLBACK_BELOW the answer is "Fallback".
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re

from . import values
from .intents import FALLBACK, IntentSet
from .text import Tokens, tokenize

ENGINE = "unified-nlu"
ENGINE_VERSION = "1"
FALLBACK_BELOW = 0.45  # tuned on tests/data/nlu/dev.tsv only (docs/NLU.md)
TOP_K = 5              # intents the classifier hands to template alignment
W_CLASSIFIER = 0.4     # the classifier's share of the score (the rest: template alignment)
W_MISSING = 1.0        # a template word missing from the input costs this times its weight
W_SLOT = 1.5           # weight of a typed slot filled (a matched word weighs its rarity)
W_SKIP_SLOT = 1.5      # DP penalty: a slot the input does not fill (a word missing from
                       # either side costs that word's weight)


class TrainingData:
    """What a model is trained from: the intent set and the names from the catalog."""

    def __init__(self, intents: IntentSet, agents: list[str] | tuple = (),
                 profiles: list[str] | tuple = ()):
        self.intents = intents
        self.agents = list(agents)
        self.profiles = list(profiles)

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self.intents.intents):
            it = self.intents.intents[name]
            h.update(json.dumps([name, it.slots, [t for t, _ in it.examples]]).encode())
        h.update(json.dumps([self.intents.lists, self.agents, self.profiles],
                            sort_keys=True).encode())
        return h.hexdigest()[:12]


def train(data: TrainingData) -> "Model":
    return Model(data)


def _edits1_ok(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance of a and b, or limit + 1 when over the limit."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def _spoken(name: str) -> str:
    """'STTService' → 'stt service', 'MemoryClient' → 'memory client'."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", s)
    return s.lower()


class Model:
    def __init__(self, data: TrainingData):
        self.data = data
        self.intents = data.intents
        self.version = f"{ENGINE}-{ENGINE_VERSION}+{data.digest()}"
        self.trained_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.names = {"agent": {"".join(_spoken(a).split()): a for a in data.agents},
                      "profile": {p.lower(): p for p in data.profiles}}
        vocab = set(values.VOCABULARY)
        for it in self.intents.intents.values():
            for _, sentences in it.examples:
                for s in sentences:
                    vocab.update(w for w in s if isinstance(w, str))
        for phrases in self.intents.lists.values():
            for p in phrases:
                vocab.update(p.split())
        for a in data.agents:
            vocab.update(_spoken(a).split())
        vocab.update(p.lower() for p in data.profiles)
        self.vocab = vocab
        # a word's weight in alignment: how few intents use it ("the" little, "timer" much);
        # a word no template uses weighs most
        used: dict[str, set] = {}
        for it in self.intents.intents.values():
            for _, sentences in it.examples:
                for s in sentences:
                    for w in s:
                        if isinstance(w, str):
                            used.setdefault(w, set()).add(it.name)
        n_int = len(self.intents.intents)
        self.unknown_weight = math.log(1 + n_int)
        self.weight = {w: math.log(1 + n_int / len(names)) for w, names in used.items()}
        self._by_len: dict[int, list[str]] = {}
        for w in vocab:
            self._by_len.setdefault(len(w), []).append(w)
        self._fix_cache: dict[str, str] = {}
        # classifier: one document per expanded sentence
        docs: list[tuple[str, dict[str, float]]] = []
        df: dict[str, int] = {}
        for it in self.intents.intents.values():
            for _, sentences in it.examples:
                for s in sentences:
                    words = [w if isinstance(w, str) else f"<{it.slots[w[1]]}>" for w in s]
                    feats = _features(words)
                    docs.append((it.name, feats))
                    for f in feats:
                        df[f] = df.get(f, 0) + 1
        n = len(docs)
        self.idf = {f: math.log((1 + n) / (1 + c)) + 1 for f, c in df.items()}
        # a feature no example has weighs as the rarest: "turn off the radio" is further from
        # "turn off the timer" than "turn off the" alone would be
        self.unseen_idf = math.log(1 + n) + 1
        self.index: dict[str, list[tuple[int, float]]] = {}
        self.doc_intent: list[str] = []
        for d, (name, feats) in enumerate(docs):
            vec = _weigh(feats, self.idf)
            self.doc_intent.append(name)
            for f, w in vec.items():
                self.index.setdefault(f, []).append((d, w))
        self.n_sentences = n

    # ------------------------------------------------------------------ public
    def describe(self) -> dict:
        return {"engine": ENGINE, "engine_version": ENGINE_VERSION, "model_version": self.version,
                "trained_at": self.trained_at, "intents": len(self.intents.intents),
                "sentences": self.n_sentences, "files": list(self.intents.files)}

    def parse(self, text: str, now: dt.datetime | None = None, alternatives: int = 3) -> dict:
        now = now or dt.datetime.now()
        toks = tokenize(text)
        toks.norm = [self._fix(t) for t in toks.norm]
        if not toks.norm:
            return {"intent": FALLBACK, "slots": {}, "confidence": 0.0, "alternatives": []}
        tagged = self._tag(toks, now.date())
        cls = self._classify(tagged)
        top = sorted(cls.items(), key=lambda kv: -kv[1])[:TOP_K]
        scored = []
        for name, c in top:
            a, slots = _Aligner(self, toks, now.date()).best(self.intents.intents[name])
            scored.append((W_CLASSIFIER * c + (1 - W_CLASSIFIER) * a, name, slots))
        scored.sort(key=lambda x: -x[0])
        best, name, slots = scored[0]
        alts = [{"intent": n, "confidence": round(s, 3)} for s, n, _ in scored[1:1 + alternatives]]
        if best < FALLBACK_BELOW:
            alts = [{"intent": name, "confidence": round(best, 3)}] + alts[:alternatives - 1]
            return {"intent": FALLBACK, "slots": {}, "confidence": round(best, 3),
                    "alternatives": alts}
        return {"intent": name, "slots": slots, "confidence": round(best, 3),
                "alternatives": alts}

    # ------------------------------------------------------------------ internals
    def _fix(self, w: str) -> str:
        """The vocabulary word a typo stands for (unique within distance 1, 2 if long)."""
        if w in self.vocab or len(w) < 3 or not w.isalpha():
            return w
        hit = self._fix_cache.get(w)
        if hit is not None:
            return hit
        limit = 1 if len(w) < 7 else 2
        best, best_d, tie = w, limit + 1, False
        for n in range(len(w) - limit, len(w) + limit + 1):
            for v in self._by_len.get(n, ()):
                d = _edits1_ok(w, v, limit)
                if d < best_d:
                    best, best_d, tie = v, d, False
                elif d == best_d and v != best:
                    tie = True
        out = w if tie or best_d > limit else best
        if len(self._fix_cache) < 10000:
            self._fix_cache[w] = out
        return out

    def _tag(self, toks: Tokens, today: dt.date) -> list[str]:
        """Words with typed values replaced by their type: what the classifier was trained on."""
        out: list[str] = []
        w = toks.norm
        i = 0
        while i < len(w):
            for j in range(min(len(w), i + 6), i, -1):
                t = self.typed_value(w[i:j], today)
                if t is not None:
                    out.append(f"<{t[0]}>")
                    i = j
                    break
            else:
                out.append(w[i])
                i += 1
        return out

    def typed_value(self, span: list[str], today: dt.date, want: str | None = None):
        """(type, value) for a span that is one typed value (the first type that parses)."""
        kinds = (want,) if want else ("duration", "date", "time", "agent", "profile", "number")
        for k in kinds:
            v = self.value_of(k, span, today)
            if v is not None:
                return k, v
        if not want:
            for lname in self.intents.lists:
                v = self.value_of(lname, span, today)
                if v is not None:
                    return lname, v
        return None

    def value_of(self, kind: str, span: list[str], today: dt.date):
        if kind == "number":
            return values.number(span)
        if kind == "duration":
            return values.duration(span)
        if kind == "date":
            return values.date(span, today)
        if kind == "time":
            if values.number(span) is not None:
                return None  # a bare number is a number ("twenty degrees" is no 20:00)
            return values.time_of_day(span)
        if kind in ("agent", "profile"):
            s = span[1:] if span[0] == "the" and len(span) > 1 else span
            if kind == "profile" and len(s) > 1 and s[-1] in ("profile", "mode"):
                s = s[:-1]
            return self.names[kind].get("".join(s))
        if kind in self.intents.lists:
            return self.intents.lists[kind].get(" ".join(span))
        return None

    def _classify(self, words: list[str]) -> dict[str, float]:
        q = _weigh(_features(words), self.idf, self.unseen_idf)
        sims: dict[int, float] = {}
        for f, wq in q.items():
            for d, wd in self.index.get(f, ()):
                sims[d] = sims.get(d, 0.0) + wq * wd
        out: dict[str, float] = {n: 0.0 for n in self.intents.intents}
        for d, s in sims.items():
            n = self.doc_intent[d]
            if s > out[n]:
                out[n] = s
        return out


def _features(words: list[str]) -> dict[str, float]:
    f: dict[str, float] = {}
    for i, w in enumerate(words):
        f["w:" + w] = f.get("w:" + w, 0) + 1
        if i + 1 < len(words):
            k = f"b:{w} {words[i + 1]}"
            f[k] = f.get(k, 0) + 1
        if not w.startswith("<"):
            p = f" {w} "
            for n in (3, 4):
                for j in range(len(p) - n + 1):
                    k = "c:" + p[j:j + n]
                    f[k] = f.get(k, 0) + 0.5
    return f


def _weigh(feats: dict[str, float], idf: dict[str, float],
           unseen: float | None = None) -> dict[str, float]:
    """Sublinear TF times IDF, L2-normalised; unseen features count in the norm only."""
    v = {f: (1 + math.log(c) if c >= 1 else c) * idf.get(f, unseen or 0.0) for f, c in feats.items()}
    norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
    return {f: x / norm for f, x in v.items()}


class _Aligner:
    """Best cover of the input by one intent's templates (dynamic programming)."""

    def __init__(self, model: Model, toks: Tokens, today: dt.date):
        self.model = model
        self.toks = toks
        self.w = toks.norm
        self.today = today
        self.span_cache: dict[tuple, object] = {}

    def best(self, intent) -> tuple[float, dict]:
        """The best alignment over the intent's sentences. Sentences are tried best bound
        first and skipped when even their bound cannot beat what was found: the bound counts
        every template word present in the input as matched and only the costs no alignment
        avoids (template words absent from the input; with no slot, input words absent from
        the template), so skipping never changes the answer (~10x fewer alignments)."""
        wt, unknown = self.model.weight, self.model.unknown_weight
        present = set(self.w)
        bounds = []
        for _, sentences in intent.examples:
            for s in sentences:
                words = [x for x in s if isinstance(x, str)]
                n_slots = len(s) - len(words)
                typed = sum(1 for x in s if not isinstance(x, str)
                            and intent.slots[x[1]] != "text")
                gain = sum(wt.get(x, unknown) for x in words if x in present) + W_SLOT * typed
                cost = W_MISSING * sum(wt.get(x, unknown) for x in words if x not in present)
                if not n_slots:
                    sw = set(words)
                    cost += sum(wt.get(x, unknown) for x in self.w if x not in sw)
                if gain > 0:
                    bounds.append((gain / (gain + cost), s))
        bounds.sort(key=lambda b: -b[0])
        best: tuple = (0.0, 0, {})
        for bound, s in bounds:
            if bound < best[0]:
                break
            got = self.align(s, intent)
            if got[:2] > best[:2]:  # the better score; on a tie the more words matched
                best = got
        return best[0], best[2]

    def _value(self, kind: str, i: int, j: int):
        key = (kind, i, j)
        if key not in self.span_cache:
            if kind == "text":
                v = self.toks.original(i, j) if i < j else None
            else:
                v = self.model.value_of(kind, self.w[i:j], self.today)
            self.span_cache[key] = v
        return self.span_cache[key]

    def align(self, seq: tuple, intent) -> tuple[float, float, dict]:
        w = self.w
        n, m = len(w), len(seq)
        wt = self.model.weight
        unknown = self.model.unknown_weight
        in_w = [wt.get(t, unknown) for t in w]
        # memo[(k, i)] = (cost, matched weight, path) for seq[k:] against w[i:]
        memo: dict[tuple[int, int], tuple[float, float, tuple]] = {}
        tail_in = [0.0] * (n + 1)
        for i in range(n - 1, -1, -1):
            tail_in[i] = tail_in[i + 1] + in_w[i]

        def go(k: int, i: int) -> tuple[float, float, tuple]:
            key = (k, i)
            if key in memo:
                return memo[key]
            if k == m:
                r: tuple[float, float, tuple] = (tail_in[i], 0.0, ())
            else:
                item = seq[k]
                cands = []
                if i < n:
                    c, mt, p = go(k, i + 1)
                    cands.append((c + in_w[i], mt, p))
                if isinstance(item, str):
                    iw = wt.get(item, unknown)
                    if i < n and w[i] == item:
                        c, mt, p = go(k + 1, i + 1)
                        cands.append((c, mt + iw, p))
                    c, mt, p = go(k + 1, i)
                    cands.append((c + W_MISSING * iw, mt, p))
                else:
                    kind = intent.slots[item[1]]
                    for j in range(i + 1, n + 1):
                        v = self._value(kind, i, j)
                        if v is not None:
                            c, mt, p = go(k + 1, j)
                            # a typed value is evidence like a matched word; free text is not
                            cands.append((c, mt + (W_SLOT if kind != "text" else 0.0),
                                          ((item[1], v, i, j),) + p))
                    c, mt, p = go(k + 1, i)
                    cands.append((c + W_SKIP_SLOT, mt, p))
                r = min(cands, key=lambda x: (x[0], -x[1]))
            memo[key] = r
            return r

        cost, matched, path = go(0, 0)
        if matched == 0:
            return 0.0, 0.0, {}
        score = matched / (matched + cost)
        slots = {name: {"value": v, "text": self.toks.original(i, j)} for name, v, i, j in path}
        return score, matched, slots
