"""Check intent files without starting the agent:

    python3 -m unified_agents.builtin.nlu check [DIR]     (default /etc/unified/intents.d)
    python3 -m unified_agents.builtin.nlu parse TEXT...   (prints the answer as JSON)

Exit 0 when valid, 2 with one line per problem (file:line: field: message) otherwise."""
from __future__ import annotations

import json
import sys

from . import IntentsInvalid, load, load_dir
from .intents import default_dir


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("check", "parse"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        if argv[0] == "check":
            d = argv[1] if len(argv) > 1 else default_dir()
            s = load_dir(d)
            print(f"{d}: {len(s.intents)} intents in {len(s.files)} files: ok")
            return 0
        model = load(default_dir(), "/etc/unified/unified.yaml")
    except IntentsInvalid as e:
        print(str(e), file=sys.stderr)
        return 2
    for text in argv[1:]:
        print(json.dumps(model.parse(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
