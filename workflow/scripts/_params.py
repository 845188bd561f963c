"""Read params.yaml for a DVC stage script and validate it against the one schema."""

from pathlib import Path

import yaml

from bratseg.config import Params, parse_params

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "params.schema.yaml"


def load_params(path: Path | str = "params.yaml") -> Params:
    """Typed parameters; a bad key ends the step with one line (ConfigError via run_step)."""
    with open(path) as f:
        raw = yaml.safe_load(f)
    with open(SCHEMA) as f:
        schema = yaml.safe_load(f)
    return parse_params(raw, schema, source=str(path))
