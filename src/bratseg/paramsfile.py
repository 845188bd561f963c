"""Reading ``params.yaml`` for the entry points: the one place of the package that reads YAML.

The command line (``bratseg``), the DVC stage scripts and the Snakefile read the parameter file (or receive
it parsed, as Snakemake's ``config``) and validate it with the pipeline's one schema,
``workflow/schemas/params.schema.yaml`` (shipped inside the package as ``bratseg/params.schema.yaml``). The
library below them only ever sees the typed :class:`~bratseg.config.Params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bratseg.config import Params, parse_params
from bratseg.errors import ConfigError

SCHEMA_FILE = Path(__file__).resolve().parent / "params.schema.yaml"


def load_schema() -> dict[str, Any]:
    """The JSON schema of ``params.yaml``."""
    schema: dict[str, Any] = yaml.safe_load(SCHEMA_FILE.read_text())
    return schema


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate a parameter file.

    Raises:
        ConfigError: one line naming the file and the first bad key (or why the file cannot be read).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    return params_from_mapping(raw, source=str(path))


def params_from_mapping(raw: Mapping[str, Any], source: str = "params.yaml") -> Params:
    """Validate an already parsed parameter mapping (Snakemake's ``config``) into :class:`Params`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    return parse_params(raw, load_schema(), source=source)
