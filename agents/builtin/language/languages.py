"""Language names and codes: what a caller may write ("en", "eng", "English") and the one code
the agents compare (ISO 639-3, the codes Apertium's newer pairs use in their mode names).

Only languages that some Apertium pair in Debian bookworm or langdetect's profiles cover are
listed; an unknown one is refused by the caller with the list of what is installed.
"""
from __future__ import annotations

# 639-3 code: (639-1 codes, English name)
_TABLE = {
    "afr": ("af", "afrikaans"), "arg": ("an", "aragonese"), "ast": ("", "asturian"),
    "bel": ("be", "belarusian"), "bre": ("br", "breton"), "bul": ("bg", "bulgarian"),
    "cat": ("ca", "catalan"), "dan": ("da", "danish"), "deu": ("de", "german"),
    "eng": ("en", "english"), "epo": ("eo", "esperanto"), "eus": ("eu", "basque"),
    "fra": ("fr", "french"), "frp": ("", "arpitan"), "glg": ("gl", "galician"),
    "hbs": ("sh hr sr bs", "serbo-croatian"), "hin": ("hi", "hindi"),
    "ind": ("id", "indonesian"), "isl": ("is", "icelandic"), "ita": ("it", "italian"),
    "mkd": ("mk", "macedonian"), "nld": ("nl", "dutch"), "nno": ("nn", "norwegian nynorsk"),
    "nob": ("nb no", "norwegian"), "oci": ("oc", "occitan"), "pol": ("pl", "polish"),
    "por": ("pt", "portuguese"), "ron": ("ro", "romanian"), "rus": ("ru", "russian"),
    "slv": ("sl", "slovenian"), "spa": ("es", "spanish"), "srd": ("sc", "sardinian"),
    "swe": ("sv", "swedish"), "szl": ("", "silesian"), "ukr": ("uk", "ukrainian"),
    "urd": ("ur", "urdu"), "zlm": ("ms", "malay"),
}
_ALIASES = {"cast": "spa", "castilian": "spa", "croatian": "hbs", "serbian": "hbs",
            "bosnian": "hbs", "norwegian bokmal": "nob", "bokmal": "nob"}


def _index() -> dict[str, str]:
    out = dict(_ALIASES)
    for code3, (codes1, name) in _TABLE.items():
        out[code3] = code3
        out[name] = code3
        for c in codes1.split():
            out[c] = code3
    return out


_INDEX = _index()


def canonical(lang: str) -> str | None:
    """The 639-3 code of `lang` (a 639-1/639-3 code or an English name, any case; a region or
    variant after "_" or "-" such as "en_US" is ignored), or None when unknown."""
    key = lang.strip().lower().replace("-", "_")
    return _INDEX.get(key) or _INDEX.get(key.split("_", 1)[0])


def name(code3: str) -> str:
    return _TABLE.get(code3, ("", code3))[1]


def iso1(code3: str) -> str:
    """The two-letter code (langdetect's) of a 639-3 code, or the code itself."""
    codes = _TABLE.get(code3, ("", ""))[0].split()
    return codes[0] if codes else code3
