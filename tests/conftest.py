"""Test set-up shared by every LookDev test.

The pack's folder is imported as the package `lookdev` (its name on disk varies: a clone, a
worktree, custom_nodes/LookDev), without running its __init__.py, so that library tests need no
ComfyUI. Tests that need ComfyUI use the fixtures in comfy_host.py.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from _pack import alias_pack  # noqa: E402  (scripts/ holds the one alias helper)


class _PackRootIsNotATestPackage:
    """pytest would import the pack's __init__.py to collect its root as a test package, which
    the alias below exists to avoid; in a checkout whose folder name is not an identifier
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


alias_pack()


def pytest_collection_modifyitems(config, items):
    """LOOKDEV_ONLY_FLUX2=1 keeps only the tests whose id names flux2: scripts/test.sh's second
    pass, run under the transformers ComfyUI 0.3.75 builds Flux.2's tokenizer with (README,
    Architectures). Any -k or -m given still applies."""
    if os.environ.get("LOOKDEV_ONLY_FLUX2") != "1":
        return
    kept = [item for item in items if "flux2" in item.nodeid]
    config.hook.pytest_deselected(items=[item for item in items if "flux2" not in item.nodeid])
    items[:] = kept


# --- ComfyUI fixtures (imported lazily so library tests run without ComfyUI) ---------------

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """ComfyUI in this process with the pack loaded; see comfy_host.ComfyHost."""
    import comfy_host

    host = comfy_host.start_in_process(tmp_path_factory.mktemp("comfy"))
    bundles = {}

    def tiny_bundle(arch):
        if arch not in bundles:
            if arch == "wan21":  # three files in the model folders, through the core loaders
                bundles[arch] = comfy_host.load_tiny_wan(host)
            elif arch == "qwen_image":  # its VAE from the Wan 2.1 VAE file, through VAELoader
                bundles[arch] = comfy_host.load_tiny_qwen_image(host)
            else:
                bundles[arch] = comfy_host.tiny_models_module().build(arch, seed=0)
        return bundles[arch]

    host.tiny_bundle = tiny_bundle
    comfy_host.register_test_nodes(host, tiny_bundle)
    return host


@pytest.fixture(scope="session")
def tiny_checkpoint(comfy):
    """A single-file SD1.5 checkpoint in ComfyUI's checkpoints folder; returns its file name."""
    import comfy_host

    name = "lookdev_tiny_sd15.safetensors"
    path = comfy.models_dir("checkpoints") / name
    if not path.exists():
        comfy_host.tiny_models_module().save_sd15_checkpoint(path, seed=0)
    return name


@pytest.fixture(scope="session")
def server_base(tmp_path_factory, tiny_checkpoint, comfy):
    """A ComfyUI base folder for server processes, with the tiny checkpoint linked in."""
    base = tmp_path_factory.mktemp("server")
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / tiny_checkpoint).symlink_to(comfy.models_dir("checkpoints") / tiny_checkpoint)
    return base


@pytest.fixture(scope="session")
def server(server_base):
    """`main.py --cpu` on a free loopback port with the pack installed; with LOOKDEV_FRONTEND_ROOT
    (a frontend's static folder, see scripts/bootstrap.sh --frontend) it serves that frontend."""
    import comfy_host

    frontend = os.environ.get("LOOKDEV_FRONTEND_ROOT")
    if frontend and not (Path(frontend) / "index.html").is_file():
        raise pytest.UsageError(f"LOOKDEV_FRONTEND_ROOT={frontend} holds no index.html: give a frontend's "
                                "static folder (scripts/bootstrap.sh --frontend VERSION prints it)")
    srv = comfy_host.start_server(server_base, extra_args=["--front-end-root", frontend] if frontend else ())
    yield srv
    srv.stop()
