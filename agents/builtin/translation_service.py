"""TranslationService (5595/6595): text translation with Apertium; the code is in language/."""
from .language.translation_agent import TranslationService

AGENT = TranslationService
