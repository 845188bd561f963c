"""Run this repository's own package: its ``src`` goes first on ``sys.path``.

``pip install -e .`` points ``import bratseg`` at the checkout the virtualenv was made in. Inside
``dvc exp run --temp``, a queued experiment or any other copy of the repository that is another checkout,
whose code may differ from the code DVC hashed for the stage. Every workflow script imports this module
before the package, so a stage always runs the code of the tree it runs in. The environment is left alone:
a cluster job that runs a deployed copy of the workflow elsewhere finds its own ``src`` the same way.
"""

import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

if SRC.is_dir():
    _loaded = sys.modules.get("bratseg")
    if _loaded is not None and SRC not in Path(str(_loaded.__file__)).resolve().parents:
        sys.exit(f"error: bratseg was imported from {_loaded.__file__} before {SRC} could be put first")
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
