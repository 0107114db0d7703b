"""FixedStreamingTranslation (5584/6584): Apertium over a stream of transcript segments;
the code is in language/."""
from .language.stream_translation_agent import FixedStreamingTranslation

AGENT = FixedStreamingTranslation
