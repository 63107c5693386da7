"""A stand-in for a ComfyUI server's HTTP API, for testing the batch renderer.

It answers POST /prompt, GET /history/{id}, GET /view and GET /system_stats like ComfyUI 0.3.x,
renders nothing, and misbehaves on request: per shot id (or "*" for every shot) a behaviour of
"error" (execution error in the history status), "reject" (HTTP 400 with node errors), "hang"
(never finishes), "no_images" (only temp images), "truncated" (half a PNG).
"""

import io
import json
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image, PngImagePlugin

SHOT_NODE = "10"


def closed_port_url():
    """The address of a loopback port nobody listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def frame_png(server, shot_id, size=(64, 36)):
    info = PngImagePlugin.PngInfo()
    info.add_text("server", server)
    info.add_text("shot", shot_id)
    buffer = io.BytesIO()
    color = (hash(server) % 200 + 30, hash(shot_id) % 200 + 30, 90)
    Image.new("RGB", size, color).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


class FakeComfy:
    def __init__(self, name, behaviour=None, polls_before_done=2, die_after_prompts=None,
                 finish_when=None, images_per_shot=1, on_prompt=None):
        self.name = name
        self.behaviour = behaviour or {}
        self.polls_before_done = polls_before_done
        self.die_after_prompts = die_after_prompts
        self.finish_when = finish_when or (lambda: True)  # extra condition before a shot may finish
        self.images_per_shot = images_per_shot
        self.on_prompt = on_prompt or (lambda: None)  # called after each accepted prompt
        self.received = []  # (workflow, client_id) per accepted or rejected POST /prompt
        self.jobs = {}  # prompt_id -> {"shot", "polls", "done"}
        self.files = {}
        self.active = self.max_active = 0
        self.dead = threading.Event()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def shots_received(self):
        return [workflow[SHOT_NODE]["inputs"]["shots"].split("|")[0].strip() for workflow, _ in self.received]

    def stop(self):
        if not self.dead.is_set():
            self.dead.set()
            self.httpd.shutdown()
            self.httpd.server_close()

    def _mode(self, shot):
        return self.behaviour.get(shot, self.behaviour.get("*"))

    def _post_prompt(self, body):
        workflow, client_id = body["prompt"], body.get("client_id")
        shot = workflow[SHOT_NODE]["inputs"]["shots"].split("|")[0].strip()
        with self.lock:
            self.received.append((workflow, client_id))
            if self._mode(shot) == "reject":
                return 400, {"error": {"type": "prompt_outputs_failed_validation",
                                       "message": "Prompt outputs failed validation", "details": ""},
                             "node_errors": {"4": {"class_type": "CheckpointLoaderSimple", "errors": [
                                 {"message": "Value not in list", "details": "ckpt_name: 'x.safetensors' not in []"}]}}}
            prompt_id = str(uuid.uuid4())
            self.jobs[prompt_id] = {"shot": shot, "polls": 0, "done": False}
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if self.die_after_prompts is not None and len(self.received) >= self.die_after_prompts:
                threading.Thread(target=self.stop, daemon=True).start()
        self.on_prompt()
        return 200, {"prompt_id": prompt_id, "number": len(self.received), "node_errors": {}}

    def _history(self, prompt_id):
        with self.lock:
            job = self.jobs.get(prompt_id)
            if job is None:
                return {}
            job["polls"] += 1
            mode = self._mode(job["shot"])
            if mode == "hang" or job["polls"] <= self.polls_before_done or not self.finish_when():
                return {}
            if not job["done"]:
                job["done"] = True
                self.active -= 1
            return {prompt_id: self._entry(prompt_id, job["shot"], mode)}

    def _entry(self, prompt_id, shot, mode):
        if mode == "error":
            return {"prompt": [0, prompt_id, {}, {}, ["9"]], "outputs": {}, "status": {
                "status_str": "error", "completed": False, "messages": [
                    ["execution_start", {"prompt_id": prompt_id}],
                    ["execution_error", {"prompt_id": prompt_id, "node_id": "3", "node_type": "KSampler",
                                         "exception_type": "torch.OutOfMemoryError",
                                         "exception_message": "CUDA out of memory\n", "traceback": []}]]}}
        images = []
        for number in range(1, self.images_per_shot + 1):
            name = f"{shot}_{number:05d}_.png"
            self.files[("lookdev", name)] = frame_png(self.name, f"{shot}#{number}")
            images.append({"filename": name, "subfolder": "lookdev", "type": "output"})
        outputs = {"12": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]}}
        if mode != "no_images":
            outputs["9"] = {"images": images}
        return {"prompt": [0, prompt_id, {}, {}, ["9"]], "outputs": outputs, "status": {
            "status_str": "success", "completed": True, "messages": [["execution_success", {"prompt_id": prompt_id}]]}}

    def _view(self, query):
        key = (query.get("subfolder", [""])[0], query.get("filename", [""])[0])
        data = self.files.get(key)
        if data is None or query.get("type", [""])[0] != "output":
            return 404, b""
        shot = key[1].rsplit("_", 2)[0]
        return 200, data[: len(data) // 2] if self._mode(shot) == "truncated" else data

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body, kind="application/json"):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if self.path == "/prompt":
                    self._send(*fake._post_prompt(body))
                else:
                    self._send(404, b"404: Not Found", "text/plain")

            def do_GET(self):
                parts = urlsplit(self.path)
                if parts.path == "/system_stats":
                    self._send(200, {"system": {"comfyui_version": "0.3.75"}, "devices": []})
                elif parts.path.startswith("/history/"):
                    self._send(200, fake._history(parts.path[len("/history/"):]))
                elif parts.path == "/view":
                    status, data = fake._view(parse_qs(parts.query))
                    self._send(status, data, "image/png")
                else:
                    self._send(404, b"404: Not Found", "text/plain")

        return Handler
