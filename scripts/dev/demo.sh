#!/bin/sh
# `make demo`: the system running, disposable. Boots a Debian bookworm container with
# systemd 252 (systemd-nspawn), installs dist/unified-system_*_all.deb with apt, starts
# the core profile and shows it, then asks the assistant a spoken question (full profile,
# flite's voice, `unified-ctl ask --audio`). With a terminal you get a shell inside
# afterwards (exit it to tear everything down); without one it is torn down at once.
set -eu
cd "$(dirname "$0")/../.."
demo='
set -e
echo "== unified-ctl profile switch core"
unified-ctl profile switch core
echo
echo "== unified-ctl status"
COLUMNS=120 unified-ctl status
echo
echo "== curl http://localhost:8200/health   (ServiceRegistry health port)"
curl -s http://localhost:8200/health; echo
echo
echo "== unified-ctl profile switch learning --dry-run"
unified-ctl profile switch learning --dry-run
echo
echo "== the assistant: a spoken question, answered (its agents are in the full profile)"
unified-ctl profile switch full
flite -voice slt -t "what time is it" -o /tmp/question.wav
echo "(/tmp/question.wav: flite saying \"what time is it\")"
unified-ctl ask --audio /tmp/question.wav --reply-audio /tmp/answer.wav
echo "(the spoken answer: /tmp/answer.wav)"
'
if [ -t 0 ] && [ -t 1 ]; then
    exec scripts/dev/container.py run -- bash -c "$demo"'
echo
echo "You are inside the demo container (exit to tear it down). Try: unified-ctl profile list; unified-ctl profile switch learning; curl -s localhost:7108/health; unified-ctl logs -f"
exec bash -i'
else
    exec scripts/dev/container.py run -- bash -c "$demo"
fi
