"""The configs, shipped inside the package: ``train.yaml`` and one folder per config group
(``data/``, ``model/``, ``optimizer/``, ..., ``experiment/`` for the published protocols,
``debug/`` for the debug presets). ``nnbasics-train`` finds them through Hydra's search path as
``pkg://nnbasics.conf``, so an installed wheel carries them; ``NNBASICS_CONF`` points at another
folder instead.
"""

import os
from pathlib import Path

CONF_DIR = Path(os.environ.get("NNBASICS_CONF") or Path(__file__).resolve().parent)
"""The config folder as a path (for ``hydra.initialize_config_dir`` and tools that read the YAML)."""
