"""StreamingLanguageAnalyzer (5579/6579): language id and sentiment of streaming transcripts;
the code is in language/."""
from .language.analyzer_agent import StreamingLanguageAnalyzer

AGENT = StreamingLanguageAnalyzer
