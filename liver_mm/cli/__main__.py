"""``python -m liver_mm.cli``: the same as the ``liver-mm`` console script."""

from __future__ import annotations

import sys

from liver_mm.cli import main

if __name__ == "__main__":
    sys.exit(main())
