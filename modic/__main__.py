"""Allow ``python -m modic``."""

from modic.cli import main

raise SystemExit(main())
