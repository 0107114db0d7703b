"""ChitchatAgent (5711/6711): small talk with NLTK's ELIZA; the code is in language/."""
from .language.chitchat_agent import ChitchatAgent

AGENT = ChitchatAgent
