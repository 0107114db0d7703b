"""An NLLB-200 model converted for CTranslate2, for NLLBAdapter when the operator points
NLLB_MODEL_DIR at one. No Debian package ships such a model (nor ctranslate2), so nothing here
runs by default; the adapter then answers through Apertium and says so.

The directory is what `ct2-transformers-converter --model facebook/nllb-200-distilled-600M
--copy_files sentencepiece.bpe.model` writes: model.bin plus the SentencePiece model that
NLLB's tokenizer uses. Sentences are encoded as NLLB expects: pieces, "</s>", the source
language token; the target language token is the target prefix.
"""
from __future__ import annotations

import importlib
import os
import re

from unified_agents.config import ConfigError

from . import languages

# 639-3 → NLLB's FLORES-200 code (the languages languages.py knows)
FLORES = {"afr": "afr_Latn", "ast": "ast_Latn", "bel": "bel_Cyrl", "bul": "bul_Cyrl",
          "cat": "cat_Latn", "dan": "dan_Latn", "deu": "deu_Latn", "eng": "eng_Latn",
          "epo": "epo_Latn", "eus": "eus_Latn", "fra": "fra_Latn", "glg": "glg_Latn",
          "hbs": "hrv_Latn", "hin": "hin_Deva", "ind": "ind_Latn", "isl": "isl_Latn",
          "ita": "ita_Latn", "mkd": "mkd_Cyrl", "nld": "nld_Latn", "nno": "nno_Latn",
          "nob": "nob_Latn", "oci": "oci_Latn", "pol": "pol_Latn", "por": "por_Latn",
          "ron": "ron_Latn", "rus": "rus_Cyrl", "slv": "slv_Latn", "spa": "spa_Latn",
          "srd": "srd_Latn", "swe": "swe_Latn", "szl": "szl_Latn", "ukr": "ukr_Cyrl",
          "urd": "urd_Arab", "zlm": "zsm_Latn"}
_FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


def flores(lang: str) -> str | None:
    """NLLB's code of `lang` (a FLORES-200 code as is, or what languages.py knows)."""
    if _FLORES_CODE.match(lang):
        return lang
    code3 = languages.canonical(lang)
    return FLORES.get(code3) if code3 else None


class NLLB:
    name = "nllb-ctranslate2"

    def __init__(self, agent: str, model_dir: str, device: str, beam_size: int):
        if not os.path.isfile(os.path.join(model_dir, "model.bin")):
            raise ConfigError(f"{agent}: NLLB_MODEL_DIR={model_dir!r} holds no model.bin; "
                              "allowed: a CTranslate2 conversion of an NLLB-200 model, or "
                              "unset (then Apertium answers)")
        spm = os.path.join(model_dir, "sentencepiece.bpe.model")
        if not os.path.isfile(spm):
            raise ConfigError(f"{agent}: NLLB_MODEL_DIR={model_dir!r} has no "
                              "sentencepiece.bpe.model (NLLB's tokenizer; convert with "
                              "--copy_files sentencepiece.bpe.model)")
        try:
            ctranslate2 = importlib.import_module("ctranslate2")
        except ImportError as e:
            raise ConfigError(f"{agent}: NLLB_MODEL_DIR is set but the Python module "
                              f"ctranslate2 cannot be imported ({e}); it is not in Debian "
                              "bookworm: install it (pip install ctranslate2) or unset "
                              "NLLB_MODEL_DIR to answer through Apertium") from None
        try:
            sentencepiece = importlib.import_module("sentencepiece")
        except ImportError as e:
            raise ConfigError(f"{agent}: NLLB_MODEL_DIR is set but the Python module "
                              f"sentencepiece cannot be imported ({e}); install the Debian "
                              "package python3-sentencepiece") from None
        self.model_dir = model_dir
        self.version = getattr(ctranslate2, "__version__", "unknown")
        self.translator = ctranslate2.Translator(model_dir, device=device)
        self.sp = sentencepiece.SentencePieceProcessor(model_file=spm)
        self.beam_size = beam_size

    def translate(self, text: str, src: str, tgt: str) -> str:
        tokens = self.sp.encode(text, out_type=str) + ["</s>", src]
        out = self.translator.translate_batch([tokens], target_prefix=[[tgt]],
                                              beam_size=self.beam_size)
        hyp = out[0].hypotheses[0]
        if hyp and hyp[0] == tgt:
            hyp = hyp[1:]
        return self.sp.decode(hyp)
