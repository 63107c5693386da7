"""A ComfyUI server process (`main.py`) with the LookDev pack installed, on a free loopback port.

The server gets its own base folder (input, output, models, custom_nodes, ...) with this checkout
linked into its custom_nodes, so it never touches the ComfyUI tree it runs from. Used by
scripts/demo.py and by the tests (tests/comfy_host.py). Standard library only.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK_LINK = "LookDev"
BASE_FOLDERS = ("input", "output", "temp", "user", "custom_nodes", "models/checkpoints", "models/loras")


class ServerStartError(RuntimeError):
    """The server exited or did not answer; the message ends with the tail of its log."""


def comfyui_path():
    """$COMFYUI_PATH, else the ComfyUI that scripts/bootstrap.sh recorded in .host/env."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return Path(env).resolve()
    host_env = ROOT / ".host" / "env"
    if host_env.exists():
        for line in host_env.read_text().splitlines():
            if line.startswith("COMFYUI_PATH="):
                return Path(line.split("=", 1)[1])
    return ROOT / ".host" / "ComfyUI"


def comfyui_version(path=None):
    text = (Path(path or comfyui_path()) / "comfyui_version.py").read_text()
    return text.split('"')[-2]


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_base(base):
    """Create a ComfyUI base folder's subfolders and link this checkout into its custom_nodes."""
    base = Path(base)
    for sub in BASE_FOLDERS:
        (base / sub).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_LINK
    if link.is_symlink() and link.resolve() != ROOT:
        link.unlink()  # a base folder reused from another checkout
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    return base


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    base: Path
    log_path: Path

    def log(self):
        return self.log_path.read_text(errors="replace")

    def exit_report(self, during):
        """None while ComfyUI runs; else why it stopped, with the end of its log."""
        if self.process.poll() is None:
            return None
        return (f"ComfyUI exited with code {self.process.returncode} {during}; "
                f"the end of its log ({self.log_path}):\n{self.log_tail()}")

    def log_tail(self, lines=40):
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self):
        """Terminate the server (its process group) and wait for it; kill it if it lingers."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start(base, python=None, extra_args=(), timeout=180, cpu=True, env=None):
    """Start `main.py` for base folder `base` on a free loopback port; return once it answers.
    `env`: variables added to this process's environment for the server (e.g. thread counts).

    The server runs in its own process group, so a Ctrl-C in the terminal reaches the caller,
    which stops it. Raises ServerStartError (with the log's tail) if it exits or stays silent.
    """
    path = comfyui_path()
    if not (path / "main.py").exists():
        raise ServerStartError(f"no ComfyUI at {path}: run scripts/bootstrap.sh or set COMFYUI_PATH")
    base = prepare_base(base)
    port = free_port()
    log_path = base / f"comfyui-{port}.log"
    cmd = [python or sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(port),
           "--base-directory", str(base), "--disable-auto-launch", *(["--cpu"] if cpu else []),
           "--use-pytorch-cross-attention", *extra_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(cmd, cwd=path, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    server = ServerProcess(process, f"http://127.0.0.1:{port}", base, log_path)
    try:
        _wait_until_up(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_up(server, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stopped = server.exit_report("while starting")
        if stopped:
            raise ServerStartError(stopped)
        try:
            with urllib.request.urlopen(server.url + "/system_stats", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise ServerStartError(f"ComfyUI did not answer within {timeout}s; the end of its log "
                           f"({server.log_path}):\n{server.log_tail()}")
