"""Text to speech with Debian's espeak-ng and flite programs (subprocess, WAV out).

The programs are run, not bound: python3-espeak binds the old libespeak1, and a child process
keeps a crash or a hang of the synthesiser out of the agent (a timeout kills it). The text goes
to espeak-ng on stdin and to flite as the argument of -t, never where it could be read as an
option. Audio comes back at the voice's own rate (espeak-ng 22050 Hz, flite kal 8000 Hz,
the other flite voices 16000 Hz), re-written as a clean mono 16-bit WAV.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile

_VARIANT = re.compile(r"[A-Za-z0-9_-]{1,32}")


class VoiceError(ValueError):
    """The request asks for something this engine cannot do (400)."""


class EngineFailed(RuntimeError):
    """The synthesiser exited with an error or ran past its time (502/504)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _env(home: str) -> dict:
    """The synthesiser's environment, HOME a throw-away directory: espeak-ng opens its audio
    library (pcaudiolib → libpulse) even when it only writes a file or prints its version,
    and libpulse then leaves $HOME/.config/pulse/<machine-id>-runtime, a symlink into /tmp,
    in the agent's state directory (found by the file-mode system test)."""
    return dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                XDG_RUNTIME_DIR=home)


def _run(argv: list[str], timeout: float, stdin: bytes | None = None,
         *, home: str) -> None:
    try:
        p = subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=timeout, check=False,
                           env=_env(home))
    except subprocess.TimeoutExpired:
        raise EngineFailed(504, f"{os.path.basename(argv[0])} ran past {timeout:g} s "
                                "(TTS_TIMEOUT_S); killed") from None
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip().splitlines()
        raise EngineFailed(502, f"{os.path.basename(argv[0])} exited with {p.returncode}: "
                                f"{err[-1] if err else 'no message'}")


class Engine:
    name = ""
    binary = ""
    default_voice = ""

    def __init__(self, path: str):
        self.path = path
        self.voices = self._list_voices()
        self.version = self._version()

    def synthesize(self, text: str, voice: str, rate: float, pitch: float,
                   timeout: float) -> bytes:
        """The WAV bytes the program wrote."""
        with tempfile.TemporaryDirectory(prefix="tts-") as tmp:
            out = os.path.join(tmp, "out.wav")
            argv, stdin = self._argv(text, voice, rate, pitch, out)
            _run(argv, timeout, stdin, home=tmp)
            with open(out, "rb") as f:
                return f.read()

    # What each engine provides (EspeakNG, Flite below).
    def _list_voices(self) -> set[str]:
        raise NotImplementedError

    def _version(self) -> str:
        raise NotImplementedError

    def _argv(self, text: str, voice: str, rate: float, pitch: float,
              out: str) -> tuple[list[str], bytes | None]:
        raise NotImplementedError

    def check_voice(self, voice: str) -> str:
        """The voice name to use for `voice`, or VoiceError naming the allowed ones."""
        raise NotImplementedError

    def _output(self, argv: list[str]) -> str:
        with tempfile.TemporaryDirectory(prefix="tts-") as tmp:
            p = subprocess.run([self.path, *argv], capture_output=True, timeout=10,
                               check=False, env=_env(tmp))
        return (p.stdout + p.stderr).decode(errors="replace")


class EspeakNG(Engine):
    name = "espeak-ng"
    binary = "espeak-ng"
    default_voice = "en-us"
    WPM = 175  # espeak-ng's default speed

    def _list_voices(self) -> set[str]:
        names: set[str] = set()
        self.variants: set[str] = set()
        for line in self._output(["--voices"]).splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5:
                names.update((cols[1], cols[4], cols[4].rpartition("/")[2]))
        for line in self._output(["--voices=variant"]).splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5:
                self.variants.add(cols[4].rpartition("/")[2])
        return names

    def _version(self) -> str:
        m = re.search(r"text-to-speech:\s*(\S+)", self._output(["--version"]))
        return m.group(1) if m else "unknown"

    def check_voice(self, voice: str) -> str:
        base, _, variant = voice.partition("+")
        if base not in self.voices:
            raise VoiceError(f"espeak-ng has no voice {base!r}; allowed: a language or voice "
                             "file of `espeak-ng --voices`, e.g. en-us, en-gb, de")
        if variant and (not _VARIANT.fullmatch(variant) or variant not in self.variants):
            raise VoiceError(f"espeak-ng has no variant {variant!r}; allowed: one of "
                             "`espeak-ng --voices=variant`, e.g. m3, f2, klatt")
        return voice

    def _argv(self, text, voice, rate, pitch, out):
        # -p: 0-99, 50 is the voice's normal pitch; -s: words per minute
        argv = [self.path, "-v", voice, "-s", str(round(self.WPM * rate)),
                "-p", str(max(0, min(99, round(50 * pitch)))), "-w", out, "--stdin"]
        return argv, text.encode()


class Flite(Engine):
    name = "flite"
    binary = "flite"
    default_voice = "slt"

    def _list_voices(self) -> set[str]:
        out = self._output(["-lv"])
        return set(out.partition(":")[2].split()) if ":" in out else set()

    def _version(self) -> str:
        m = re.search(r"version:\s*flite-(\S+)", self._output(["--version"]))
        return m.group(1) if m else "unknown"

    def check_voice(self, voice: str) -> str:
        # flite silently falls back to its default voice for an unknown name: check here
        if voice not in self.voices:
            raise VoiceError(f"flite has no voice {voice!r}; allowed: "
                             f"{', '.join(sorted(self.voices))}")
        return voice

    def _argv(self, text, voice, rate, pitch, out):
        if pitch != 1.0:
            # flite's pitch is an absolute mean F0 per voice (int_f0_target_mean), with no
            # voice-independent "normal" to scale: refuse rather than guess
            raise VoiceError('"pitch" is not supported by flite voices; allowed: 1.0, or an '
                             "espeak-ng voice")
        return [self.path, "-voice", voice, "--setf", f"duration_stretch={1.0 / rate:.3f}",
                "-t", text, "-o", out], None


ENGINES = {cls.name: cls for cls in (EspeakNG, Flite)}
PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite"}

