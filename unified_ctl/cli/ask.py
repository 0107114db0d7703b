"""unified-ctl ask: one conversation turn through the agents (unified_ctl.dialogue does it)."""
from __future__ import annotations

import click

from .context import Ctx, emit_json, pass_ctx


@click.command()
@click.argument("text", required=False)
@click.option("--audio", "audio", metavar="IN.wav", default=None,
              help="Ask with speech: the WAV is transcribed (STTService) and that is the text.")
@click.option("--wake", is_flag=True,
              help="With --audio: answer only when the audio starts with a wake phrase "
                   "(WakeWordDetector); the command is what follows it.")
@click.option("--reply-audio", "reply_audio", metavar="OUT.wav", default=None,
              help="Also write the reply as speech (TTSService) to this WAV file.")
@click.option("--session", metavar="ID", default=None,
              help="Keep context across turns (confirmations, the stored conversation); "
                   "1-128 of A-Z a-z 0-9 _ . : @ -.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              metavar="SECONDS", help="How long to wait for the answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON.")
@pass_ctx
def ask(ctx: Ctx, text: str | None, audio: str | None, wake: bool, reply_audio: str | None,
        session: str | None, timeout: float, as_json: bool) -> None:
    """Ask the assistant TEXT (or speech: --audio IN.wav): intent, the tier that answered, the
    reply, timings per stage; --reply-audio OUT.wav also writes the reply as speech.

    The turn goes through RequestCoordinator to Responder: speech is preprocessed
    (FusedAudioPreprocessor), checked for the wake phrase with --wake, and transcribed
    (STTService); then NLU and the cheapest tier that can answer (command,
    memory/knowledge, chitchat, LLM). Responder and the agents it asks
    must be in the running profile (docs/DIALOGUE.md). TEXT `-` reads the text from
    standard input (a long text: an argument is limited to 128 KiB)."""
    import sys

    from .. import dialogue

    if (text is None) == (audio is None):
        raise click.UsageError("give TEXT or --audio IN.wav (one of them)")
    if wake and audio is None:
        raise click.UsageError("--wake needs --audio IN.wav: a wake phrase is spoken")
    if text == "-":
        text = sys.stdin.read()
    b64 = dialogue.read_wav_b64(audio) if audio else None
    r = dialogue.ask(ctx.catalog, text, session, timeout, b64, reply_audio is not None, wake)
    wav = r.pop("reply_audio_wav_b64", None)
    if reply_audio is not None:
        if wav:
            r["reply_audio"] = {"path": reply_audio, "bytes": dialogue.write_wav(reply_audio, wav)}
        else:
            r["reply_audio"] = None
    if as_json:
        emit_json(r)
        return
    if r.get("wake"):
        w = r["wake"]
        click.echo(f"wake:    {w.get('phrase')} at {w.get('at_s')} s")
    if "transcript" in r:
        click.echo(f"heard:   {r['transcript']}")
    slots = ", ".join(f"{k}={v.get('value') if isinstance(v, dict) else v}"
                      for k, v in (r.get("slots") or {}).items())
    conf = f" ({r['confidence']:.2f})" if isinstance(r.get("confidence"), (int, float)) else ""
    click.echo(f"intent:  {r.get('intent') or '-'}{conf}" + (f"  {slots}" if slots else ""))
    who = f" ({r['agent']})" if r.get("agent") else ""
    click.echo(f"tier:    {r.get('tier')}{who}")
    click.echo(f"reply:   {r.get('reply')}")
    t = dict(r.get("timings_ms") or {})
    total = t.pop("total", None)
    stages = " · ".join(f"{k} {v:.1f} ms" for k, v in t.items())
    click.echo(f"timings: {stages}" + (f" · total {total:.1f} ms" if total is not None else "")
               + f" · round trip {r['client_ms']:.1f} ms")
    for s in r.get("skipped") or []:
        click.echo(f"skipped: {s.get('tier')}: {s.get('why')}")
    if reply_audio is not None and r.get("reply_audio"):
        click.echo(f"spoken:  {reply_audio} ({r['reply_audio']['bytes']} bytes)")


COMMANDS = (ask,)
