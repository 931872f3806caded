"""Script entry of ``liver-mm train``: Hydra overrides only, no subcommand.

``liver-mm train`` runs through this file so that Lightning's DDP launcher, which starts one
process per device by re-executing ``sys.argv``, re-executes a command Hydra understands.
"""

from __future__ import annotations

import sys

from liver_mm.cli.hydra_cmds import train_app

if __name__ == "__main__":
    sys.exit(train_app(sys.argv[1:]))
