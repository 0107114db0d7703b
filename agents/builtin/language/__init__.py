"""Language agents (docs/LANGUAGE.md): TranslationService, FixedStreamingTranslation and
NLLBAdapter on Apertium, StreamingLanguageAnalyzer (langdetect, VADER) and ChitchatAgent
(NLTK's ELIZA).

Nothing here imports an engine at import time: each agent checks its own engine in on_start()
and a missing one fails that agent alone, exit 2 and one line naming the Debian package
(agents/builtin/deps.py), never a fallback. The engines are Recommends of the package, not Depends.
"""
