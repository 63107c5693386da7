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


class _PackRootIsNotATestPackage:
    """pytest would import the pack's __init__.py to collect its root as a test package, which
    the alias above exists to avoid; in a checkout whose folder name is not an identifier
    (a worktree like dataset-lib) that import fails outright. Collect the root as a plain folder."""

    @staticmethod
    def pytest_collect_directory(path, parent):
        import pytest

        if path == ROOT:
            return pytest.Dir.from_parent(parent, path=path)
        return None


def pytest_configure(config):
    # A plugin, not a conftest hook: conftest hooks only see folders below tests/.
    config.pluginmanager.register(_PackRootIsNotATestPackage(), "lookdev-pack-root")
