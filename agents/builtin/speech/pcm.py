"""The audio chunks of the streaming agents (StreamingSpeechRecognition, StreamingInterruptHandler):
raw signed 16-bit little-endian mono PCM at 16 kHz in base64, what `arecord -t raw -f S16_LE
-r 16000 -c 1` writes; no header per chunk (docs/SPEECH.md, "Streaming")."""
from __future__ import annotations

import base64
import binascii

from unified_agents import HTTPError

RATE = 16000
# What any WAV may be (wav.py enforces it); here, without numpy, for the checks at start.
MIN_RATE, MAX_RATE = 8000, 48000
MAX_CHANNELS = 8
FORMAT = "raw signed 16-bit little-endian mono PCM at 16000 Hz, in base64"


def chunk(task: dict, max_bytes: int, setting: str, field: str = "audio_chunk_b64") -> bytes:
    """The chunk's bytes (b"" when absent); 400/413 naming what is allowed."""
    v = task.get(field)
    if v is None or v == "":
        return b""
    if not isinstance(v, str):
        raise HTTPError(400, f'"{field}" is {type(v).__name__}; allowed: {FORMAT}')
    try:
        raw = base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError) as e:
        raise HTTPError(400, f'"{field}" is not valid base64 ({e}); allowed: {FORMAT}') from None
    if len(raw) % 2:
        raise HTTPError(400, f'"{field}" holds {len(raw)} bytes, an odd number; allowed: an '
                             f"even number of bytes of {FORMAT}")
    if len(raw) > max_bytes:
        raise HTTPError(413, f'"{field}" holds {len(raw) / (2 * RATE):.1f} s of audio; allowed: '
                             f"at most {max_bytes / (2 * RATE):g} s per chunk ({setting})")
    return raw
