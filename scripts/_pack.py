"""Lets a script import LookDev's library as `lookdev` from this checkout, whatever its folder is
called, without running the pack's __init__.py (which needs ComfyUI). Same alias as tests/conftest.py."""

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def alias_pack(name="lookdev"):
    """Register the repository folder as package `name` (once) and return it."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(ROOT)]
    sys.modules[name] = module
    return module
