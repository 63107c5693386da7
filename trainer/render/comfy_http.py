"""A small client for a running ComfyUI server's HTTP API (stdlib only).

POST /prompt queues an API-format workflow, GET /history/{id} says when it finished and which
images it saved, GET /view downloads them, GET /system_stats tells whether the server is alive.

Failures come in two kinds so the batch renderer can react: `ServerUnavailable` (the server can't
be reached or misbehaves: try elsewhere and leave it alone for a while) and `ShotError` (the server
works but this render failed: rejected workflow, an error while executing, no images).
"""

import http.client
import json
import socket
import urllib.error
import urllib.parse
import urllib.request

_MAX_MESSAGE = 600


class ServerUnavailable(Exception):
    """The server did not answer, answered garbage or an HTTP 5xx."""


class ShotError(Exception):
    """The server is fine but this render failed; `retry` says whether another server might succeed."""

    def __init__(self, message, retry=True):
        super().__init__(message)
        self.retry = retry


def _shorten(text):
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


class ComfyClient:
    """One ComfyUI server at `base_url` (e.g. "http://127.0.0.1:8188"); `timeout` is per request, in seconds."""

    def __init__(self, base_url, timeout=30.0):
        parsed = urllib.parse.urlsplit(base_url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"server address {base_url!r} must look like http://127.0.0.1:8188")
        if not timeout > 0:
            raise ValueError(f"request timeout must be more than 0 seconds, got {timeout!r}")
        self.url = base_url.strip().rstrip("/")
        self.timeout = timeout

    def __repr__(self):
        return f"ComfyClient({self.url!r})"

    def _call(self, method, path, payload=None):
        """(status, body bytes); HTTP errors below 500 are returned, everything worse raised."""
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise ServerUnavailable(f"{self.url} answered HTTP {exc.code} to {method} {path}") from exc
            return exc.code, exc.read()
        except (TimeoutError, socket.timeout) as exc:
            raise ServerUnavailable(f"{self.url} gave no answer within {self.timeout:g} s") from exc
        except urllib.error.URLError as exc:
            raise ServerUnavailable(f"{self.url} can't be reached: {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ServerUnavailable(f"{self.url} dropped the connection: {exc or type(exc).__name__}") from exc

    def _json(self, method, path, payload=None):
        status, body = self._call(method, path, payload)
        try:
            return status, json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ServerUnavailable(f"{self.url} answered {method} {path} with something that is not "
                                    f"JSON (HTTP {status}); is it a ComfyUI server?") from exc

    def ping(self):
        """Raise ServerUnavailable unless the server answers like ComfyUI."""
        status, _ = self._json("GET", "/system_stats")
        if status != 200:
            raise ServerUnavailable(f"{self.url} answered HTTP {status} to GET /system_stats; is it a ComfyUI server?")

    def queue_prompt(self, workflow, client_id):
        """Queue an API-format workflow; return its prompt id."""
        status, answer = self._json("POST", "/prompt", {"prompt": workflow, "client_id": client_id})
        if status == 400:
            raise ShotError(f"{self.url} rejected the workflow: {_describe_rejection(answer)}")
        if status != 200 or not isinstance(answer, dict) or "prompt_id" not in answer:
            raise ServerUnavailable(f"{self.url} answered HTTP {status} to POST /prompt without a prompt id; "
                                    "is it a ComfyUI server?")
        return str(answer["prompt_id"])

    def history(self, prompt_id):
        """The history entry of `prompt_id`, or None while it is queued or running."""
        path = f"/history/{urllib.parse.quote(prompt_id, safe='')}"
        status, answer = self._json("GET", path)
        if status != 200 or not isinstance(answer, dict):
            raise ServerUnavailable(f"{self.url} answered HTTP {status} to GET {path}")
        return answer.get(prompt_id)

    def view(self, filename, subfolder="", kind="output"):
        """The bytes of a saved image."""
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        status, body = self._call("GET", f"/view?{query}")
        if status != 200:
            raise ShotError(f"{self.url} could not send image {subfolder}/{filename} (HTTP {status})")
        return body


def rejection_reasons(answer):
    """(the error message, ["node <id> (<type>): <message> <details>", ...]) of a /prompt answer
    that refused a workflow."""
    if not isinstance(answer, dict):
        return "", []
    error = answer.get("error")
    message = error.get("message", "") if isinstance(error, dict) else str(error or "")
    problems = []
    for node_id, node in (answer.get("node_errors") or {}).items():
        for problem in node.get("errors", []) if isinstance(node, dict) else []:
            problems.append(f"node {node_id} ({node.get('class_type', '?')}): "
                            f"{problem.get('message', '')} {problem.get('details', '')}".strip())
    return message, problems


def _describe_rejection(answer):
    message, problems = rejection_reasons(answer)
    return _shorten("; ".join(part for part in [message, *problems] if part) or "no reason given")


def execution_problem(entry):
    """The error message of a finished history entry, or None if it succeeded."""
    status = entry.get("status") or {}
    if status.get("status_str") != "error":
        return None
    for event, data in status.get("messages") or []:
        if event == "execution_error":
            return _shorten(f"{data.get('node_type', 'a node')} (node {data.get('node_id', '?')}) failed: "
                            f"{data.get('exception_type', 'error')}: {data.get('exception_message', '').strip()}")
        if event == "execution_interrupted":
            return "the render was interrupted on the server (someone pressed Cancel there?)"
    return "the server reports an error without details"


def output_images(entry):
    """[(filename, subfolder), ...] of the images the workflow saved to the output folder."""
    return [(image["filename"], image.get("subfolder", ""))
            for node_output in (entry.get("outputs") or {}).values()
            for image in node_output.get("images", [])
            if image.get("type") == "output" and "filename" in image]
