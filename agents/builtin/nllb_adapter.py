"""NLLBAdapter (5581/6581): an operator's NLLB model, else Apertium (it says so); the code
is in language/."""
from .language.nllb_agent import NLLBAdapter

AGENT = NLLBAdapter
