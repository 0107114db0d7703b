"""NLUAgent (5709/6709): intents and slots from /etc/unified/intents.d; the code is in nlu/."""
from .nlu.agent import NLUAgent

AGENT = NLUAgent
