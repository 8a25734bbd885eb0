"""The preset names: one TOML file each in `configs/` (kept free of heavy imports, so `--help` stays fast)."""

from pathlib import Path

CONFIG_DIR = Path(__file__).parent / "configs"
PRESET_NAMES = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))  # book, gpu, tiny
