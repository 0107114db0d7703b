"""`python3 -m unified_agents run NAME` (the service template's ExecStart)."""
from .cli import main

raise SystemExit(main())
