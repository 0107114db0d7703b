"""NLLBAdapter: the NLLB translation API; an NLLB-200 model only where the operator installed
one (docs/LANGUAGE.md, "NLLBAdapter").

    POST /task {"type": "nllb_translation", "text", "source", "target"}
      → with NLLB_MODEL_DIR set: {"text", "engine": "nllb-ctranslate2", "model", "source",
                                  "target"} (FLORES-200 codes such as "spa_Latn" are taken
                                  as they are, as are the codes and names TranslationService
                                  takes)
      → otherwise: TranslationService's answer ({"text", "engine": "apertium", "pair", ...})
        plus "note": why no NLLB model answered.

No Debian package ships an NLLB model or CTranslate2, so by default Apertium answers, and
both each answer and /health say so: a caller never mistakes Apertium's output for NLLB's.
NLLB_MODEL_DIR set but unusable (no model.bin, ctranslate2 not importable) is a failed start,
exit 2, naming what is missing; never a silent switch to Apertium.

Settings: NLLB_MODEL_DIR (unset), NLLB_DEVICE (cpu), NLLB_BEAM_SIZE (2), and the Apertium
settings of TranslationService (APERTIUM_DATA_DIR, TRANSLATION_MAX_CHARS,
TRANSLATION_TIMEOUT_S).
"""
from __future__ import annotations

import time

from unified_agents import HTTPError

from .translation_agent import ApertiumAgent, lang_field, text_field

NOTE = ("no NLLB model is configured (NLLB_MODEL_DIR unset; no Debian package ships one): "
        "translated by Apertium instead")


class NLLBAdapter(ApertiumAgent):
    version = "1.0.0"
    task_types = ("nllb_translation",)
    nllb = None

    def on_start(self) -> None:
        env = self.config.env
        model_dir = env.string("NLLB_MODEL_DIR", "")
        if model_dir:
            from .nllb import NLLB

            self.max_chars = env.integer("TRANSLATION_MAX_CHARS", 5000, 1, 1_000_000)
            self.nllb = NLLB(self.name, model_dir, env.choice("NLLB_DEVICE", ("cpu", "cuda",
                             "auto"), "cpu"), env.integer("NLLB_BEAM_SIZE", 2, 1, 16))
            self.log.info("NLLB model loaded", model=model_dir, version=self.nllb.version)
        else:
            self.load_apertium()
            self.log.info("no NLLB model: answering through Apertium", note=NOTE)

    def handle_task(self, task: dict):
        text = text_field(task, self.max_chars, "TRANSLATION_MAX_CHARS")
        source, target = lang_field(task, "source"), lang_field(task, "target")
        if self.nllb is None:
            return {**self.translate(text, source, target), "note": NOTE}
        from .nllb import flores

        src, tgt = flores(source), flores(target)
        for code, field, v in ((src, "source", source), (tgt, "target", target)):
            if code is None:
                raise HTTPError(400, f'"{field}"={v!r} has no NLLB code; allowed: a FLORES-200 '
                                     'code ("spa_Latn") or a language code or name')
        t0 = time.perf_counter()
        out = self.nllb.translate(text, src, tgt)  # type: ignore[arg-type]
        return {"text": out, "engine": self.nllb.name, "model": self.nllb.model_dir,
                "source": src, "target": tgt,
                "processing_s": round(time.perf_counter() - t0, 4)}

    def health_checks(self) -> dict:
        return {"engine": True} if self.nllb is not None else super().health_checks()

    def health_info(self) -> dict:
        if self.nllb is not None:
            return {"engine": self.nllb.name, "engine_version": self.nllb.version,
                    "model": self.nllb.model_dir}
        return {**super().health_info(), "note": NOTE}
