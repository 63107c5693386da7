"""A real ComfyUI for the tests: in-process (its executor, its node registry, its PromptServer
object) and as a server subprocess (`main.py --cpu`) for HTTP and websocket tests.

The ComfyUI tree comes from $COMFYUI_PATH, else the one scripts/bootstrap.sh unpacked into
.host/ComfyUI. Nothing here replaces ComfyUI code with mocks: graphs run through
`execution.PromptExecutor`, inputs are checked by `execution.validate_prompt`, and the pack is
loaded by ComfyUI's own `nodes.load_custom_node`.
"""

import asyncio
import copy
import inspect
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
sys.path.insert(0, str(SCRIPTS))

import comfy_server  # noqa: E402  (scripts/: shared with the demo)
from comfy_server import comfyui_path, comfyui_version  # noqa: E402


def _call_maybe_async(fn, *args, **kwargs):
    result = fn(*args, **kwargs)
    if inspect.iscoroutine(result):
        return asyncio.run(result)
    return result


@dataclass
class RunResult:
    prompt_id: str
    success: bool
    ui: dict  # node id -> the "ui" dict each output node returned
    messages: list  # (event, data) the executor emitted for this prompt
    events: list  # (event, data) everything sent through PromptServer.send_sync meanwhile
    progress: list  # (value, total, node id) from comfy.utils.ProgressBar

    @property
    def error(self):
        for event, data in self.messages:
            if event == "execution_error":
                return data
        return None

    @property
    def refusal(self):
        """The details of every node error when validation refused the prompt, else None."""
        for event, data in self.messages:
            if event == "validation_error":
                return "\n".join(error["details"] for node in data["node_errors"].values()
                                 for error in node["errors"])
        return None

    @property
    def interrupted(self):
        return any(event == "execution_interrupted" for event, _ in self.messages)

    def events_named(self, name):
        return [data for event, data in self.events if event == name]


@dataclass
class ComfyHost:
    """ComfyUI imported into this process, with temp folders registered through folder_paths."""

    path: Path
    base: Path
    version: str
    nodes: object = None
    folder_paths: object = None
    execution: object = None
    server: object = None
    captured: dict = field(default_factory=dict)
    listeners: list = field(default_factory=list)  # callables(event, data) run on each send_sync
    progress_listeners: list = field(default_factory=list)  # callables(value, total, node id) on each progress update
    surface_before_pack: dict = None  # server_surface() just before the pack was loaded
    _events: list = field(default_factory=list)
    _progress: list = field(default_factory=list)
    _executor: object = None

    @property
    def input_dir(self):
        return Path(self.folder_paths.get_input_directory())

    @property
    def output_dir(self):
        return Path(self.folder_paths.get_output_directory())

    def models_dir(self, kind):
        return Path(self.folder_paths.get_folder_paths(kind)[0])

    def node_class(self, node_id):
        return self.nodes.NODE_CLASS_MAPPINGS[node_id]

    def new_executor(self):
        kwargs = {"cache_type": self.execution.CacheType.CLASSIC}
        params = inspect.signature(self.execution.PromptExecutor.__init__).parameters
        if "cache_args" in params:  # 0.3.75
            kwargs["cache_args"] = {"lru": 0, "ram": 0}
        elif "cache_size" in params:  # 0.3.64
            kwargs["cache_size"] = 0
        return self.execution.PromptExecutor(self.server, **kwargs)

    def validate(self, prompt):
        """(valid, error, node_errors) from ComfyUI's own prompt validation."""
        validate = self.execution.validate_prompt
        params = inspect.signature(validate).parameters
        args = [str(uuid.uuid4()), prompt] if "prompt_id" in params else [prompt]
        if "partial_execution_list" in params:
            args.append(None)
        result = _call_maybe_async(validate, *args)
        return result[0], result[1], result[3]

    def run(self, prompt, expect_error=False, fresh=False, client_id="tests", extra_pnginfo=None):
        """Validate and execute an API-format prompt; returns RunResult.

        Unless expect_error, a validation or execution error fails the calling test with
        ComfyUI's own message. `extra_pnginfo` is what the browser sends along (e.g. the workflow).
        """
        # The executor writes IS_CHANGED answers into the prompt dict: never reuse a caller's.
        prompt = copy.deepcopy(prompt)
        valid, error, node_errors = self.validate(prompt)
        if not valid:
            if expect_error:
                return RunResult("", False, {}, [("validation_error", {"error": error, "node_errors": node_errors})], [], [])
            raise AssertionError(f"prompt failed validation: {error} {json.dumps(node_errors, default=str)[:2000]}")
        if fresh or self._executor is None:
            self._executor = self.new_executor()
        executor = self._executor
        self._events.clear()
        self._progress.clear()
        prompt_id = str(uuid.uuid4())
        outputs = [node_id for node_id, node in prompt.items()
                   if getattr(self.node_class(node["class_type"]), "OUTPUT_NODE", False)]
        extra_data = {"client_id": client_id}
        if extra_pnginfo is not None:
            extra_data["extra_pnginfo"] = extra_pnginfo
        executor.execute(prompt, prompt_id, extra_data, outputs)
        result = RunResult(prompt_id, executor.success, dict(executor.history_result.get("outputs", {})),
                           list(executor.status_messages), list(self._events), list(self._progress))
        if not expect_error and not result.success:
            err = result.error or {}
            raise AssertionError("prompt failed in node {} ({}): {}\n{}".format(
                err.get("node_id"), err.get("node_type"), err.get("exception_message"),
                "".join(err.get("traceback", []))))
        return result

    def interrupt_after(self, seconds):
        """Press ComfyUI's Cancel after `seconds` (from another thread, as the server does)."""
        def press():
            time.sleep(seconds)
            self.nodes.interrupt_processing(True)
        thread = threading.Thread(target=press, daemon=True)
        thread.start()
        return thread


def start_in_process(base_dir):
    """Import ComfyUI from comfyui_path() into this process, configured for CPU tests."""
    path = comfyui_path()
    if not (path / "main.py").exists():
        raise RuntimeError(f"no ComfyUI at {path}: run scripts/bootstrap.sh or set COMFYUI_PATH")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    base = Path(base_dir)
    for sub in ("input", "output", "temp", "user", "models", "custom_nodes"):
        (base / sub).mkdir(parents=True, exist_ok=True)

    # Flags must be set before comfy.model_management is imported; never parse pytest's argv.
    import comfy.cli_args
    args = comfy.cli_args.args
    args.cpu = True
    args.use_pytorch_cross_attention = True
    args.disable_auto_launch = True
    args.base_directory = str(base)
    import utils.extra_config  # noqa: F401  (before `nodes`, as main.py does: see module doc)
    import folder_paths
    _point_folder_paths(folder_paths, base)
    import comfy.model_management  # noqa: F401
    import comfy.utils
    import execution
    import nodes
    import server

    loop = asyncio.new_event_loop()
    prompt_server = server.PromptServer(loop)
    host = ComfyHost(path=path, base=base, version=comfyui_version(path), nodes=nodes,
                     folder_paths=folder_paths, execution=execution, server=prompt_server)
    _record_events(host)
    _call_maybe_async(nodes.init_extra_nodes, init_custom_nodes=False, init_api_nodes=False)
    link = base / "custom_nodes" / "LookDev"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    host.surface_before_pack = server_surface(prompt_server, nodes)
    if not _call_maybe_async(nodes.load_custom_node, str(link)):
        raise RuntimeError("ComfyUI could not load the LookDev pack (see the log above)")
    return host


def server_surface(prompt_server, nodes):
    """What a custom node pack can add to ComfyUI's HTTP server: routes (on the route table or the
    app itself), middlewares, app hooks, and folders served under /extensions/."""
    app = prompt_server.app
    return {
        "routes": sorted(repr(route) for route in prompt_server.routes),
        "app routes": sorted(f"{route.method} {route.resource.canonical}" for route in app.router.routes()),
        "middlewares": [repr(item) for item in app.middlewares],
        "hooks": {name: len(getattr(app, name)) for name in ("on_startup", "on_shutdown", "on_cleanup",
                                                             "on_response_prepare", "cleanup_ctx")},
        "web folders": dict(nodes.EXTENSION_WEB_DIRS),
    }


def _point_folder_paths(folder_paths, base):
    folder_paths.set_output_directory(str(base / "output"))
    folder_paths.set_input_directory(str(base / "input"))
    folder_paths.set_temp_directory(str(base / "temp"))
    for kind in ("checkpoints", "loras", "vae", "diffusion_models", "text_encoders", "clip"):
        folder = base / "models" / kind
        folder.mkdir(parents=True, exist_ok=True)
        folder_paths.add_model_folder_path(kind, str(folder), is_default=True)


def _record_events(host):
    import comfy.utils

    original = host.server.send_sync

    def send_sync(event, data, sid=None):
        host._events.append((event, data))
        for listener in list(host.listeners):
            listener(event, data)
        return original(event, data, sid)

    host.server.send_sync = send_sync

    def progress_hook(value, total, preview_image, prompt_id=None, node_id=None):
        import comfy.model_management
        host._progress.append((value, total, node_id))
        for listener in list(host.progress_listeners):
            listener(value, total, node_id)
        # What main.py's hook does first: makes ComfyUI's Cancel reach long-running nodes.
        comfy.model_management.throw_exception_if_processing_interrupted()

    comfy.utils.set_progress_bar_global_hook(progress_hook)


# ---------------------------------------------------------------------------------------------
# Server subprocess


class ComfyServer(comfy_server.ServerProcess):
    """A started server with the HTTP helpers tests use."""

    def get(self, route, timeout=30):
        import requests
        response = requests.get(self.url + route, timeout=timeout)
        response.raise_for_status()
        return response

    def post(self, route, payload, timeout=30):
        import requests
        return requests.post(self.url + route, json=payload, timeout=timeout)

    def queue(self, prompt, client_id=None):
        response = self.post("/prompt", {"prompt": prompt, "client_id": client_id or str(uuid.uuid4())})
        if response.status_code != 200:
            raise AssertionError(f"/prompt refused the prompt: {response.text[:2000]}")
        return response.json()["prompt_id"]

    def wait(self, prompt_id, timeout=300):
        """The /history entry of a finished prompt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}").json()
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                entry = history[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            if self.process.poll() is not None:
                raise AssertionError(f"ComfyUI exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout}s:\n{self.log()[-4000:]}")


def start_server(base_dir, extra_args=(), timeout=180, python=None):
    """Start `main.py --cpu` on a free loopback port, the pack linked into its custom_nodes."""
    started = comfy_server.start(base_dir, python=python, extra_args=extra_args, timeout=timeout)
    return ComfyServer(started.process, started.url, started.base, started.log_path)


def tiny_models_module():
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    import tiny_models
    return tiny_models


WAN_FILES = {"diffusion_models": "lookdev_tiny_wan2.1_t2v.safetensors",
             "text_encoders": "lookdev_tiny_umt5.safetensors", "vae": "lookdev_tiny_wan_2.1_vae.safetensors"}


def load_tiny_wan(host):
    """The tiny Wan 2.1 t2v model as a user has it: three files in models/diffusion_models,
    text_encoders and vae (written once per session), the transformer and VAE loaded by the core
    UNETLoader and VAELoader nodes, the text encoder as CLIPLoader(type wan) loads it."""
    tiny = tiny_models_module()
    paths = {kind: host.models_dir(kind) / name for kind, name in WAN_FILES.items()}
    if not all(path.exists() for path in paths.values()):
        tiny.save_wan_files(paths["diffusion_models"], paths["text_encoders"], paths["vae"], seed=0)
    model = host.node_class("UNETLoader")().load_unet(WAN_FILES["diffusion_models"], "default")[0]
    vae = host.node_class("VAELoader")().load_vae(WAN_FILES["vae"])[0]
    return tiny.TinyModels(model, tiny.load_wan_clip(paths["text_encoders"]), vae, "wan21")


def load_tiny_qwen_image(host):
    """The tiny Qwen-Image model: transformer and text encoder built in memory (ComfyUI fixes their
    widths when it reads a file: see scripts/tiny_models.py), the VAE its user has, the Wan 2.1 VAE
    file, through the core VAELoader."""
    tiny = tiny_models_module()
    path = host.models_dir("vae") / WAN_FILES["vae"]
    if not path.exists():
        paths = {kind: host.models_dir(kind) / name for kind, name in WAN_FILES.items()}
        tiny.save_wan_files(paths["diffusion_models"], paths["text_encoders"], paths["vae"], seed=0)
    vae = host.node_class("VAELoader")().load_vae(WAN_FILES["vae"])[0]
    return tiny.TinyModels(tiny.build_model("qwen_image"), tiny.build_clip("qwen_image"), vae, "qwen_image")


# ---------------------------------------------------------------------------------------------
# Test-only nodes, registered in the in-process ComfyUI next to the real ones.


def register_test_nodes(host, tiny_bundle):
    """`LookDevTest_TinyModels` outputs a tiny architecture's MODEL/CLIP/VAE (built once per
    session by `tiny_bundle(arch)`); `LookDevTest_Capture` keeps any value for assertions,
    `LookDevTest_CaptureList` a whole list output."""

    class TinyModels:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"arch": (list(tiny_models_module().ARCHES), {"tooltip": "tiny architecture"})}}

        RETURN_TYPES = ("MODEL", "CLIP", "VAE")
        FUNCTION = "load"
        CATEGORY = "testing"

        def load(self, arch):
            bundle = tiny_bundle(arch)
            return bundle.model, bundle.clip, bundle.vae

    class Capture:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("*", {"tooltip": "anything"}),
                                 "label": ("STRING", {"default": "value", "tooltip": "key"})}}

        @classmethod
        def VALIDATE_INPUTS(cls, input_types):
            return True

        RETURN_TYPES = ()
        FUNCTION = "capture"
        OUTPUT_NODE = True
        CATEGORY = "testing"

        def capture(self, value, label):
            host.captured[label] = value
            return {}

    class CaptureList(Capture):
        """Keeps a whole list output (OUTPUT_IS_LIST) under label."""
        INPUT_IS_LIST = True

        def capture(self, value, label):
            host.captured[label[0]] = list(value)
            return {}

    host.nodes.NODE_CLASS_MAPPINGS["LookDevTest_TinyModels"] = TinyModels
    host.nodes.NODE_CLASS_MAPPINGS["LookDevTest_Capture"] = Capture
    host.nodes.NODE_CLASS_MAPPINGS["LookDevTest_CaptureList"] = CaptureList
