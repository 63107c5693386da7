"""Source checks over the pack (trainer/, nodes/, scripts/, __init__.py): every file write goes
through trainer/fileio.py's atomic writes, and nothing can load a pickle.

The checks read the syntax tree, so they see calls however they are spelled (`torch.save`,
`from torch import save`, `np.save`, `Path.write_text`...). Each rule is also run on small bad
snippets, so a checker that stopped seeing anything would fail here too.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILEIO = ROOT / "trainer" / "fileio.py"

# Calls, by the name they resolve to through the module's imports, that create, fill or move files.
WRITE_FUNCTIONS = {
    "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree", "shutil.move", "shutil.copyfileobj",
    "os.rename", "os.renames", "os.replace", "os.link", "os.symlink", "os.truncate", "os.mkfifo",
    "os.write", "os.fdopen", "torch.save", "numpy.save", "numpy.savez", "numpy.savez_compressed",
    "numpy.savetxt", "safetensors.torch.save_file", "safetensors.numpy.save_file", "json.dump",
    "tempfile.mkstemp", "tempfile.mkdtemp", "tempfile.NamedTemporaryFile", "tempfile.TemporaryFile",
    "tempfile.SpooledTemporaryFile", "urllib.request.urlretrieve",
}
OPENERS = {"open", "io.open", "codecs.open", "gzip.open", "bz2.open", "lzma.open"}  # mode: 2nd argument
# Methods of values (paths, images, models, arrays) that write files.
WRITE_METHODS = {"write_text", "write_bytes", "touch", "save", "save_pretrained", "savefig", "to_csv",
                 "to_parquet", "tofile", "symlink_to", "hardlink_to", "rename"}
OS_WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}

PICKLE_MODULES = ("pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal")
PICKLE_LOADERS = {"torch.load", "torch.jit.load", "torch.serialization.load", "pandas.read_pickle",
                  "comfy.utils.load_torch_file", "numpy.lib.format.read_array"}


def pack_files():
    files = sorted({*ROOT.glob("trainer/**/*.py"), *ROOT.glob("nodes/**/*.py"), *ROOT.glob("scripts/**/*.py"),
                    ROOT / "__init__.py"})
    assert len(files) > 30 and FILEIO in files
    return files


class _Scanner(ast.NodeVisitor):
    """Collects (line, text) of write calls that bypass trainer/fileio.py and of pickle loading."""

    def __init__(self, source):
        self.source = source
        self.aliases = {}  # local name -> qualified name, from the imports
        self.writes, self.pickles = [], []
        self.safe_targets = [set()]  # per function: names of in-memory buffers and atomic temp folders

    # -- names -------------------------------------------------------------------------------

    def visit_Import(self, node):
        for alias in node.names:
            self.aliases[alias.asname or alias.name.split(".")[0]] = alias.asname and alias.name or alias.name.split(".")[0]
            if alias.name.split(".")[0] in PICKLE_MODULES:
                self._pickle(node, f"imports {alias.name}")

    def visit_ImportFrom(self, node):
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        if (node.module or "").split(".")[0] in PICKLE_MODULES:
            self._pickle(node, f"imports from {node.module}")

    def qualified(self, expr):
        """`np.save` -> "numpy.save" when its root is an imported name; None for values."""
        parts = []
        while isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        if isinstance(expr, ast.Name) and (expr.id in self.aliases or expr.id == "open"):
            root = self.aliases.get(expr.id, expr.id)
            return ".".join([root, *reversed(parts)])
        return None

    # -- scopes: buffers and temp folders a method may write into -----------------------------

    def _scoped(self, node):
        self.safe_targets.append(set())
        self.generic_visit(node)
        self.safe_targets.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scoped

    def visit_Assign(self, node):
        if isinstance(node.value, ast.Call) and self.qualified(node.value.func) == "io.BytesIO":
            self.safe_targets[-1].update(t.id for t in node.targets if isinstance(t, ast.Name))
        self.generic_visit(node)

    def visit_With(self, node):
        for item in node.items:
            call = item.context_expr
            if (isinstance(call, ast.Call) and (self.qualified(call.func) or "").endswith("fileio.atomic_folder")
                    and isinstance(item.optional_vars, ast.Name)):
                self.safe_targets[-1].add(item.optional_vars.id)
        self.generic_visit(node)

    # -- calls -------------------------------------------------------------------------------

    def visit_Call(self, node):
        name = self.qualified(node.func)
        if name is not None:
            self._check_function(node, name)
        elif isinstance(node.func, ast.Attribute):
            self._check_method(node, node.func.attr)
        for keyword in node.keywords:
            if keyword.arg == "allow_pickle" and not _is_false(keyword.value):
                self._pickle(node, "allow_pickle")
            if keyword.arg == "weights_only" and _is_false(keyword.value):
                self._pickle(node, "weights_only=False")
        self.generic_visit(node)

    def _check_function(self, node, name):
        if name in WRITE_FUNCTIONS:
            self._write(node)
        elif name in OPENERS:
            mode = _argument(node, 1, "mode")
            if mode is not None and not (isinstance(mode, ast.Constant) and not set("wax+") & set(str(mode.value))):
                self._write(node)
        elif name == "os.open":
            flags = _argument(node, 1, "flags")
            if flags is not None and {n.attr for n in ast.walk(flags) if isinstance(n, ast.Attribute)} & OS_WRITE_FLAGS:
                self._write(node)
        if name in PICKLE_LOADERS or name.split(".")[0] in PICKLE_MODULES:
            self._pickle(node, name)

    def _check_method(self, node, method):
        if method == "open":  # Path.open(mode)
            mode = _argument(node, 0, "mode")
            if isinstance(mode, ast.Constant) and set("wax+") & set(str(mode.value)):
                self._write(node)
        elif method == "replace" and len(node.args) == 1 and not node.keywords:  # Path.replace, not str's
            self._write(node)
        elif method in WRITE_METHODS:
            target = _argument(node, 0, "fp")
            if not (isinstance(target, ast.Name) and any(target.id in scope for scope in self.safe_targets)):
                self._write(node)

    def _write(self, node):
        self.writes.append((node.lineno, ast.get_source_segment(self.source, node)))

    def _pickle(self, node, what):
        self.pickles.append((node.lineno, what))


def _argument(call, position, keyword):
    for item in call.keywords:
        if item.arg == keyword:
            return item.value
    return call.args[position] if len(call.args) > position else None


def _is_false(expr):
    return isinstance(expr, ast.Constant) and not expr.value


def scan(source):
    scanner = _Scanner(source)
    scanner.visit(ast.parse(source))
    return scanner


def _report(found):
    return "\n".join(f"{path.relative_to(ROOT)}:{line}: {text}" for path, line, text in found)


# Writes that are no saved result, each looked at: (file, the call's text as reported).
NOT_RESULTS = {
    ("scripts/comfy_server.py", "link.symlink_to"): "links the pack into a server's custom_nodes",
    ("scripts/comfy_server.py", "open"): "the server's log, streamed while it runs",
    ("scripts/demo.py", "link.symlink_to"): "links the user's --checkpoint into the demo's models folder",
}


def test_every_write_goes_through_fileio():
    found = [(path, line, text) for path in pack_files() if path != FILEIO
             for line, text in scan(path.read_text()).writes
             if (str(path.relative_to(ROOT)), text.split("(")[0]) not in NOT_RESULTS]
    assert not found, ("write these through trainer/fileio.py (write_bytes, write_text, write_json, "
                       "write_image, write_safetensors, atomic_folder):\n" + _report(found))


def test_nothing_loads_a_pickle():
    found = [(path, line, what) for path in pack_files() for line, what in scan(path.read_text()).pickles]
    assert not found, "pickle loading in the pack:\n" + _report(found)


@pytest.mark.parametrize("snippet", [
    "open(p, 'w')", "open(p, mode='ab')", "open(p, 'r+')", "import io\nio.open(p, 'wb')", "open(p, m)",
    "p.write_text('x')", "Path(p).write_bytes(b'')", "p.touch()", "p.open('w')", "p.rename(q)", "p.replace(q)",
    "image.save(path)", "image.save(path, format='PNG')", "model.save_pretrained(folder)",
    "import torch\ntorch.save(x, p)", "from torch import save\nsave(x, p)", "import numpy as np\nnp.save(p, a)",
    "import safetensors.torch\nsafetensors.torch.save_file(t, p)", "from safetensors.torch import save_file\nsave_file(t, p)",
    "import shutil\nshutil.copy(a, b)", "import os\nos.replace(a, b)", "import os\nos.open(p, os.O_WRONLY | os.O_CREAT)",
    "import json\njson.dump(x, fh)", "import tempfile\ntempfile.mkstemp()",
    "import io\ndef f():\n    buf = io.BytesIO()\ndef g():\n    image.save(buf)",  # the buffer is another function's
    "from ..fileio import atomic_path\nwith atomic_path(p) as tmp:\n    model.save_pretrained(tmp)",
])
def test_the_write_check_sees(snippet):
    assert scan(snippet).writes, snippet


@pytest.mark.parametrize("snippet", [
    "open(p)", "open(p, 'rb')", "Image.open(p)", "p.open()", "p.read_text()", "text.replace('a', 'b')",
    "import io\ndef f(image):\n    buf = io.BytesIO()\n    image.save(buf, format='PNG')",
    "from ..fileio import atomic_folder\nwith atomic_folder(p) as tmp:\n    model.save_pretrained(tmp)",
    "from safetensors.torch import save\ndata = save(t)", "import safetensors.torch\nsafetensors.torch.save(t)",
    "from ..fileio import write_bytes\nwrite_bytes(p, b'')", "import os\nos.open(p, os.O_RDONLY)",
])
def test_the_write_check_allows(snippet):
    assert not scan(snippet).writes, snippet


@pytest.mark.parametrize("snippet", [
    "import pickle", "from pickle import loads", "import joblib", "import dill", "import torch\ntorch.load(p)",
    "import torch\ntorch.load(p, weights_only=True)", "from torch import load\nload(p)",
    "import numpy as np\nnp.load(p, allow_pickle=True)", "import comfy.utils\ncomfy.utils.load_torch_file(p)",
    "import torch\ntorch.jit.load(p)", "x.from_pretrained(p, weights_only=False)",
])
def test_the_pickle_check_sees(snippet):
    assert scan(snippet).pickles, snippet


@pytest.mark.parametrize("snippet", [
    "import numpy as np\nnp.load(p)", "import numpy as np\nnp.load(p, allow_pickle=False)",
    "import safetensors.torch\nsafetensors.torch.load_file(p)",
])
def test_the_pickle_check_allows(snippet):
    assert not scan(snippet).pickles, snippet


SERVER_NAMES = {"routes", "add_routes", "router", "middlewares", "add_subapp", "add_static", "on_startup"}


def test_no_server_routes_are_added():
    """The pack only sends websocket events (PromptServer.send_sync); tests/test_crash_safety.py
    compares the live server's routes with and without the pack. scripts/ run in their own
    processes (the demo is an aiohttp client of the server), so only the code ComfyUI imports
    may not use aiohttp at all."""
    found = []
    for path in pack_files():
        imported_by_comfyui = path.relative_to(ROOT).parts[0] != "scripts"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in SERVER_NAMES:
                found.append((path, node.lineno, node.attr))
            if imported_by_comfyui and isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                found += [(path, node.lineno, name) for name in names if name.split(".")[0] == "aiohttp"]
    assert not found, "server routes in the pack:\n" + _report(found)
