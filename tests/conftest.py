"""Test set-up shared by every LookDev test.

The pack's folder is imported as the package `lookdev` (its name on disk varies: a clone, a
worktree, custom_nodes/LookDev), without running its __init__.py, so that library tests need no
ComfyUI. Tests that need ComfyUI use the fixtures in comfy_host.py.
"""

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _alias_pack(name="lookdev"):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(ROOT)]
    sys.modules[name] = module
    return module


_alias_pack()
