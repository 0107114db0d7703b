"""IntentionValidatorAgent (5701/6701): what changes the system needs an explicit yes.

    POST /task {"type": "intention_validation", "op": "request", "action": "switch_profile",
                "args": {"profile": "vision"}, "session"?: "s1"}
      → {"decision": "confirm", "confirmation_id": "c1", "expires_in_s": 60,
         "reply": "Switch from profile core to vision? Say yes to confirm, or no."}
         | {"decision": "refused", "reply": "There is no profile 'x' in the catalog; ..."}
         | {"decision": "noop", "reply": "Profile vision is already running."}
    POST /task {"type": "intention_validation", "op": "answer", "session": "s1", "text": "yes"}
    POST /task {"type": "intention_validation", "op": "confirm", "confirmation_id": "c1",
                "yes": true}
      → {"decision": "none"}   (nothing pending for that session: not an answer to us)
         | {"decision": "declined", "reply": "OK, I will not switch profiles."}
         | {"decision": "expired", ...} | executed (below)

Only actions in ACTIONS, only with arguments the catalog allows (a profile it defines, read
with unified_core's FleetView at every request: a catalog edit counts at once). A request
supersedes the session's earlier pending one; a confirmation expires after
VALIDATOR_CONFIRM_S (60 s). Confirmations live in validator.db, so a restart of the agent
between question and answer loses nothing.

Executing a confirmed switch needs root (`unified-ctl profile switch` writes /etc and drives
systemd); this agent runs as the unprivileged user `unified`. It asks the one privileged
helper the package installs for exactly that (docs/SECURITY.md, "Profile switches asked in
conversation"): it writes the profile name to VALIDATOR_SWITCH_SOCKET
(/run/unified/profile-switch.sock, unified-profile-switch.socket, root:unified 0660), whose
root service checks that the caller is this agent's unit and the name a catalog profile,
answers at once and runs the switch → {"decision": "switching", "reply": "Switching from
profile core to vision now."}. The switch itself may stop this agent (a profile without it).
Without the helper's socket: {"decision": "not_executed", "status": 501, "missing": ...}
naming what is missing, and nothing changes.
"""
from __future__ import annotations

import json
import os
import re
import time

from unified_agents import Agent, HTTPError
from unified_agents.store import agent_store
from unified_agents.validate import field_str

ACTIONS = ("switch_profile",)
# An answer is a short yes or no, the deciding word first ("yes please", "no thanks", "sure,
# do it"), or one of a few whole phrases. Anything else is not an answer: "what time is it"
# must never confirm a switch because it contains "it".
YES = frozenset("yes yeah yep yup sure confirm confirmed ok okay affirmative correct".split())
NO = frozenset("no nope nah cancel negative abort don't dont".split())
YES_PHRASES = frozenset(("do it", "go ahead", "please do", "yes please do it"))
FILLER = frozenset("please thanks thank you do it go ahead that is right i switch now".split())
NO_FILLER = FILLER | frozenset("way not never mind".split())
MIGRATIONS = [
    """
    CREATE TABLE confirmations(
        id TEXT PRIMARY KEY, session TEXT, action TEXT NOT NULL, args TEXT NOT NULL,
        question TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending', answered REAL);
    CREATE INDEX confirmations_session ON confirmations(session, state);
    """,
]
MISSING = ("the privileged helper for `unified-ctl profile switch` does not listen at {path} "
           "(unified-profile-switch.socket; docs/SECURITY.md, 'Profile switches asked in "
           "conversation'); run `sudo unified-ctl profile switch {profile}` yourself")


def yes_or_no(text: str) -> bool | None:
    """True for an explicit yes, False for a no, None for anything else (not an answer)."""
    words = re.findall(r"[a-z']+", text.lower())
    if not words or len(words) > 4:
        return None
    if " ".join(words) in YES_PHRASES:
        return True
    first, rest = words[0], set(words[1:])
    if first in YES and rest <= FILLER | YES:
        return True
    if first in NO and rest <= NO_FILLER | NO:
        return False
    return None


class IntentionValidatorAgent(Agent):
    version = "1.0.0"
    task_types = ("intention_validation",)

    def on_start(self) -> None:
        from unified_core.fleetview import FleetView

        self.confirm_s = self.config.env.number("VALIDATOR_CONFIRM_S", 60.0, 1, 3600)
        self.switch_socket = self.config.env.string("VALIDATOR_SWITCH_SOCKET",
                                                    "/run/unified/profile-switch.sock")
        self.view = FleetView(self.config.catalog, log=self.log)
        self.store = agent_store(self.config, "validator.db", MIGRATIONS, log=self.log, max_mb=16)
        self.idempotency_store = self.store

    def on_stop(self) -> None:
        self.store.close()

    def handle_task(self, task: dict):
        op = task.get("op")
        if op == "request":
            return self.request_(task)
        if op == "answer":
            session = field_str(task, "session", max_len=128)
            answer = yes_or_no(field_str(task, "text", max_len=1000))
            row = self._pending(session=session)
            if answer is None or row is None:
                return {"decision": "none"}
            return self._answer(row, answer)
        if op == "confirm":
            cid = field_str(task, "confirmation_id", max_len=64)
            if not isinstance(task.get("yes"), bool):
                raise HTTPError(400, '"yes" must be true or false')
            row = self._pending(cid=cid)
            if row is None:
                raise HTTPError(404, f"no pending confirmation {cid!r} (answered, expired or "
                                     "never asked)")
            return self._answer(row, task["yes"])
        raise HTTPError(400, f"op {op!r} is invalid; allowed: request, answer, confirm")

    # ------------------------------------------------------------ asking
    def request_(self, task: dict) -> dict:
        action = task.get("action")
        if action not in ACTIONS:
            raise HTTPError(400, f"action {action!r} is not one this agent validates; allowed: "
                                 + ", ".join(ACTIONS))
        args = task.get("args") or {}
        session = task.get("session")
        if session is not None:
            session = field_str(task, "session", max_len=128)
        profile = args.get("profile") if isinstance(args, dict) else None
        if not isinstance(profile, str) or not profile:
            raise HTTPError(400, 'switch_profile needs "args": {"profile": NAME}')
        snap = self.view.current()
        profiles = list(snap.catalog.profiles)
        if profile not in profiles:
            return {"decision": "refused", "action": action,
                    "reply": f"There is no profile {profile!r} in the catalog; profiles: "
                             + ", ".join(profiles) + "."}
        if profile == snap.profile:
            return {"decision": "noop", "action": action,
                    "reply": f"Profile {profile} is already running."}
        question = (f"Switch from profile {snap.profile} to {profile}? "
                    "Say yes to confirm, or no.")
        now = time.time()

        def tx(c):
            if session is not None:   # one open question per session: the newest
                c.execute("UPDATE confirmations SET state = 'superseded', answered = ? "
                          "WHERE session = ? AND state = 'pending'", (now, session))
            n = c.execute("SELECT COUNT(*) FROM confirmations").fetchone()[0]
            cid = f"c{n + 1}"
            c.execute("INSERT INTO confirmations(id, session, action, args, question, created, "
                      "expires) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (cid, session, action, json.dumps({"profile": profile}), question, now,
                       now + self.confirm_s))
            return cid

        cid = self.store.write(tx)
        self.log.info(f"confirmation {cid} asked: {action} {profile}", session=session or "-")
        return {"decision": "confirm", "confirmation_id": cid, "action": action,
                "args": {"profile": profile}, "from_profile": snap.profile,
                "expires_in_s": self.confirm_s, "reply": question}

    # ------------------------------------------------------------ answers
    def _pending(self, *, session: str | None = None, cid: str | None = None):
        if cid is not None:
            rows = self.store.query("SELECT * FROM confirmations WHERE id = ? AND "
                                    "state = 'pending'", (cid,))
        else:
            rows = self.store.query("SELECT * FROM confirmations WHERE session = ? AND "
                                    "state = 'pending' ORDER BY created DESC LIMIT 1", (session,))
        return rows[0] if rows else None

    def _close(self, cid: str, state: str) -> None:
        self.store.write(lambda c: c.execute(
            "UPDATE confirmations SET state = ?, answered = ? WHERE id = ?",
            (state, time.time(), cid)))

    def _answer(self, row, yes: bool) -> dict:
        args = json.loads(row["args"])
        base = {"confirmation_id": row["id"], "action": row["action"], "args": args}
        if time.time() > row["expires"]:
            self._close(row["id"], "expired")
            return dict(base, decision="expired",
                        reply=f"That question expired after {self.confirm_s:g} s; ask again.")
        if not yes:
            self._close(row["id"], "declined")
            self.log.info(f"confirmation {row['id']} declined")
            return dict(base, decision="declined", reply="OK, I will not switch profiles.")
        self._close(row["id"], "confirmed")
        self.log.info(f"confirmation {row['id']} confirmed: {row['action']} {args}")
        return dict(base, **self._switch(args["profile"]))

    def _switch(self, profile: str) -> dict:
        """The confirmed switch, through the privileged helper (one line each way)."""
        import socket

        if not os.path.exists(self.switch_socket):
            # a 200 carrying "status": 501, not an HTTP 501: RequestCoordinator's breaker
            # would count a 5xx as this agent failing, and five refusals would open it
            why = MISSING.format(path=self.switch_socket, profile=profile)
            return {"decision": "not_executed", "status": 501, "missing": why,
                    "reply": f"Confirmed, but I cannot switch profiles: {why}."}
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        try:
            s.connect(self.switch_socket)
            s.sendall(profile.encode() + b"\n")
            data = b""
            while not data.endswith(b"\n") and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            r = json.loads(data or b"{}")
        except (OSError, ValueError) as e:
            self.log.warning(f"profile switch helper failed: {e}")
            return {"decision": "failed", "status": 502,
                    "reply": f"Confirmed, but the profile switch helper failed: {e}."}
        finally:
            s.close()
        if not r.get("accepted"):
            self.log.warning(f"profile switch helper refused: {r.get('error')}")
            return {"decision": "refused", "status": 403,
                    "reply": f"The profile switch helper refused: {r.get('error')}."}
        self.log.info(f"profile switch {r.get('from')} -> {profile} handed to the helper")
        return {"decision": "switching", "from_profile": r.get("from"),
                "reply": f"Switching from profile {r.get('from')} to {profile} now."}

    def health_checks(self) -> dict:
        return {"database": self.store.health(), "catalog": self.view.health_checks()
                .get("catalog", True)}

    def health_info(self) -> dict:
        n = self.store.query("SELECT COUNT(*) FROM confirmations WHERE state = 'pending'")[0][0]
        return {"actions": list(ACTIONS), "pending": n, "switch_socket": self.switch_socket,
                "switch_helper": os.path.exists(self.switch_socket)}
