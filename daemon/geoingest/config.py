"""Settings: defaults, a TOML file, the environment and the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class InputRoot:
    """One input folder and the name its metrics carry as ``source``."""

    name: str
    path: Path
