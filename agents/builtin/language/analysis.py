"""Language identification (Debian's python3-langdetect) and sentiment (NLTK's VADER, with a
lexicon the operator names) of text, for StreamingLanguageAnalyzer.

langdetect draws random samples of the text's n-grams: its seed is fixed (DetectorFactory.
seed) so that the same text always gets the same answer. Very short text is unreliable by
nature; the answer gives the probabilities so that a caller can judge.

No Debian package ships a sentiment lexicon (NLTK's VADER code is in python3-nltk, its lexicon
is NLTK data that is downloaded; checked in docs/LANGUAGE.md), so sentiment is measured only
when SENTIMENT_LEXICON names a VADER lexicon file (vader_lexicon.txt: from NLTK's data or the
vaderSentiment package). VADER's lexicon is English: other languages get no score.
"""
from __future__ import annotations

import importlib
import os

from unified_agents.config import ConfigError

from .. import deps

POSITIVE, NEGATIVE = 0.05, -0.05  # VADER's own thresholds on "compound"


class LanguageId:
    def __init__(self, agent: str):
        langdetect = deps.need_module(agent, "langdetect", "python3-langdetect",
                                      "langdetect for language identification")
        langdetect.DetectorFactory.seed = 0
        self._detect = langdetect.detect_langs
        # (no static imports: langdetect and nltk ship no type information)
        self._error = importlib.import_module(
            "langdetect.lang_detect_exception").LangDetectException
        self._detect("warm up: load the profiles before the first request")
        _factory = importlib.import_module("langdetect.detector_factory")._factory
        self.languages = sorted(_factory.get_lang_list()) if _factory else []
        self.version = _version("langdetect")

    def identify(self, text: str, top: int = 3) -> dict:
        """{"language": code or None, "probability", "languages": [{"language",
        "probability"}]}; None with "reason" when the text has nothing to go on."""
        try:
            found = self._detect(text)
        except self._error as e:
            return {"language": None, "probability": 0.0, "languages": [],
                    "reason": str(e)}
        langs = [{"language": x.lang, "probability": round(x.prob, 4)} for x in found[:top]]
        return {"language": langs[0]["language"], "probability": langs[0]["probability"],
                "languages": langs}


class Sentiment:
    def __init__(self, agent: str, lexicon: str):
        if not os.path.isfile(lexicon):
            raise ConfigError(f"{agent}: SENTIMENT_LEXICON={lexicon!r} does not exist; "
                              "allowed: a VADER lexicon file (vader_lexicon.txt), or unset "
                              "(no sentiment)")
        deps.need_module(agent, "nltk", "python3-nltk", "NLTK's VADER sentiment analyser")
        vader = importlib.import_module("nltk.sentiment.vader")
        try:
            self.analyzer = vader.SentimentIntensityAnalyzer(lexicon_file="file:" + lexicon)
        except (ValueError, IndexError, UnicodeDecodeError) as e:
            raise ConfigError(f"{agent}: SENTIMENT_LEXICON={lexicon!r} is not a VADER lexicon "
                              f"(word<TAB>mean<TAB>...): {e}") from None
        self.lexicon = lexicon
        self.words = len(self.analyzer.lexicon)
        self.version = _version("nltk")

    def score(self, text: str) -> dict:
        s = self.analyzer.polarity_scores(text)
        return {"label": label(s["compound"]), "compound": s["compound"], "positive": s["pos"],
                "negative": s["neg"], "neutral": s["neu"]}


def label(compound: float) -> str:
    return "positive" if compound >= POSITIVE else "negative" if compound <= NEGATIVE \
        else "neutral"


def _version(dist: str) -> str:
    return deps.installed_version(dist)
