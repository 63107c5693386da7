"""Headless batch rendering: one shot list, one workflow, any number of ComfyUI servers.

Each shot is rendered by queueing a copy of the workflow whose LookDev Shot List node holds just
that shot. The images the workflow saves to the server's output folder are collected: those of
LookDev Storyboard Render (which saves its frames itself) or of a Save Image node. Frames land in the output folder as `<shot_id>.png`, written only once a complete image
is downloaded, and shots whose frame already exists are skipped, so re-running the same command
resumes a stopped batch. Files of the batch itself start with "_" (shot ids can't), so they never
collide with a frame: `_contact_sheet.png`, `_batch_summary.json`, `_extras/` for additional
images a workflow saves.

Servers work in parallel, one shot each at a time. A shot that fails is retried, preferably on a
server that has not tried it yet, up to `attempts` times. A server that can't be reached (or does
not finish a shot within `shot_timeout`) is paused for `cooldown` seconds, then checked; after
`server_failures` failures in a row it is dropped for the rest of the run.
"""

import argparse
import contextlib
import copy
import io
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..fileio import SaveError, write_bytes, write_json
from .comfy_http import ComfyClient, ServerUnavailable, ShotError, execution_problem, output_images
from .framing import SEED_POLICIES, seed_for
from .sheet import contact_sheet, save_sheet_pdf, save_sheet_png
from .shots import format_shot_line, load_shot_file

SHOT_NODE_CLASS = "LookDevShotList"
SHOTS_INPUT = "shots"
SHOTS_FILE_INPUT = "shots_file"
SHEET_NAME = "_contact_sheet.png"
SUMMARY_NAME = "_batch_summary.json"
EXTRAS_FOLDER = "_extras"


@dataclass
class BatchConfig:
    workflow: Path = field(metadata={"help": "Workflow in ComfyUI API format (Workflow > Export (API)) with one LookDev Shot List node."})
    shots: Path = field(metadata={"help": "Shot list: a .csv with a header (shot_id, description, seed, aspect, negative) or a text file of 'ID | description | seed | aspect' lines."})
    servers: list = field(metadata={"help": "ComfyUI server address, e.g. http://127.0.0.1:8188; repeat for several servers."})
    output: Path = field(metadata={"help": "Folder for the frames (<shot_id>.png), the contact sheet and the summary."})
    shot_node: str | None = field(default=None, metadata={"help": "Id of the Shot List node to fill, when the workflow has several."})
    attempts: int = field(default=3, metadata={"help": "Tries per shot before it counts as failed."})
    shot_timeout: float = field(default=1800.0, metadata={"help": "Seconds a server may take for one shot, queue wait included."})
    request_timeout: float = field(default=30.0, metadata={"help": "Seconds to wait for any single HTTP answer."})
    poll_interval: float = field(default=1.0, metadata={"help": "Seconds between checks whether a shot is done."})
    cooldown: float = field(default=60.0, metadata={"help": "Seconds a failing server is left alone before it is checked again."})
    server_failures: int = field(default=3, metadata={"help": "Failures in a row after which a server is dropped for this run."})
    columns: int = field(default=4, metadata={"help": "Frames per row on the contact sheet."})
    title: str | None = field(default=None, metadata={"help": "Contact sheet title (default: workflow and shot list names)."})
    pdf: bool = field(default=False, metadata={"help": "Also write the contact sheet as _contact_sheet.pdf."})

    def check(self):
        if not self.servers:
            raise ValueError("give at least one server, e.g. --server http://127.0.0.1:8188")
        addresses = [url.strip().rstrip("/") for url in self.servers]
        for url in sorted({url for url in addresses if addresses.count(url) > 1}):
            raise ValueError(f"server {url} is given twice; each server renders one shot at a time, list it once")
        for name in ("attempts", "server_failures", "columns"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("shot_timeout", "request_timeout", "poll_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds, got {getattr(self, name)}")
        if self.cooldown < 0:
            raise ValueError(f"cooldown can't be negative, got {self.cooldown}")
        return self


def config_help(name):
    """The help text of a BatchConfig field, for the command line."""
    return next(f.metadata["help"] for f in fields(BatchConfig) if f.name == name)


@dataclass
class ShotOutcome:
    shot_id: str
    status: str = "pending"  # rendered | skipped | failed | interrupted
    server: str | None = None
    attempts: int = 0
    file: str | None = None
    extras: list = field(default_factory=list)
    seconds: float | None = None  # wall time of the successful attempt
    error: str | None = None
    errors: list = field(default_factory=list)  # one line per failed attempt


@dataclass
class BatchResult:
    outcomes: list
    sheet: Path | None
    summary: Path

    @property
    def failed(self):
        return [outcome for outcome in self.outcomes if outcome.status not in ("rendered", "skipped")]


def load_workflow(path):
    """An API-format workflow {node_id: {"class_type", "inputs"}} from a JSON file."""
    path = Path(path)
    try:
        workflow = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise ValueError(f"workflow {path} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"workflow {path} is not a JSON file: {exc}") from exc
    if isinstance(workflow, dict) and "nodes" in workflow and "links" in workflow:
        raise ValueError(f"workflow {path} is in ComfyUI's editor format; open it in ComfyUI and use "
                         "Workflow > Export (API), then pass that file")
    if not isinstance(workflow, dict) or not workflow or not all(
            isinstance(node, dict) and "class_type" in node and isinstance(node.get("inputs"), dict)
            for node in workflow.values()):
        raise ValueError(f"workflow {path} is not in ComfyUI API format ({{node id: {{class_type, inputs}}}}); "
                         "export it with Workflow > Export (API)")
    return workflow


def find_shot_node(workflow, node_id=None):
    """The id of the node whose `shots` input receives each shot; ValueError if ambiguous or missing."""
    if node_id is not None:
        node = workflow.get(str(node_id))
        if node is None:
            raise ValueError(f"the workflow has no node {node_id!r}; its nodes are {', '.join(workflow)}")
        candidates = [str(node_id)]
    else:
        candidates = [key for key, node in workflow.items() if node["class_type"] == SHOT_NODE_CLASS]
        if not candidates:
            raise ValueError(f"the workflow has no LookDev Shot List node ({SHOT_NODE_CLASS}); add one, "
                             "or name the node to fill with --shot-node")
        if len(candidates) > 1:
            raise ValueError(f"the workflow has {len(candidates)} Shot List nodes ({', '.join(candidates)}); "
                             "choose one with --shot-node")
    value = workflow[candidates[0]]["inputs"].get(SHOTS_INPUT)
    if not isinstance(value, str):
        raise ValueError(f"node {candidates[0]} needs a '{SHOTS_INPUT}' text input typed into the node "
                         f"(found {'a link from another node' if isinstance(value, list) else 'none'})")
    return candidates[0]


def shot_workflow(workflow, node_id, shot, index):
    """A copy of `workflow` rendering only `shot` (the `index`-th of the full list).

    If the node has literal `seed_policy` and `base_seed` inputs, the seed the shot would get in
    the full list is written into its line and the policy set to "per-shot seeds", so a batch
    renders the same frames as the whole list rendered at once. A `shots_file` the node names is
    cleared: the shot now comes as text, and the node takes one or the other.
    """
    job = copy.deepcopy(workflow)
    inputs = job[node_id]["inputs"]
    if SHOTS_FILE_INPUT in inputs:
        inputs[SHOTS_FILE_INPUT] = ""
    policy, base_seed = inputs.get("seed_policy"), inputs.get("base_seed")
    if policy in SEED_POLICIES and isinstance(base_seed, int):
        shot = replace(shot, seed=seed_for(policy, base_seed, index, shot))
        inputs["seed_policy"] = "per-shot seeds"
    inputs[SHOTS_INPUT] = format_shot_line(shot)
    return job


def readable_image(path):
    """True if `path` is a complete image file."""
    try:
        with Image.open(path) as image:
            image.load()
        return True
    except (OSError, UnidentifiedImageError, SyntaxError):
        return False


def check_png(data, name):
    """Raise ShotError unless `data` is a complete PNG image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            kind = image.format
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise ShotError(f"the image {name} arrived damaged or incomplete ({exc})") from exc
    if kind != "PNG":
        raise ShotError(f"the image {name} is {kind}, not PNG; save frames with a PNG-writing node", retry=False)


class _Stopped(Exception):
    """The run was interrupted while this shot was rendering."""


def render_on(client, job, client_id, shot_timeout, poll_interval, stop):
    """Queue `job` on `client`, wait for it and return the bytes of every output image, checked."""
    prompt_id = client.queue_prompt(job, client_id)
    deadline = time.monotonic() + shot_timeout
    while (entry := client.history(prompt_id)) is None:
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"{client.url} did not finish the shot within {shot_timeout:g} s")
        if stop.wait(poll_interval):
            raise _Stopped()
    problem = execution_problem(entry)
    if problem:
        raise ShotError(f"{client.url}: {problem}")
    images = output_images(entry)
    if not images:
        raise ShotError("the workflow saved no image; it needs LookDev Storyboard Render or a Save Image node "
                        "(Preview Image files are temporary and not collected)", retry=False)
    downloads = []
    for filename, subfolder in images:
        data = client.view(filename, subfolder)
        check_png(data, filename)
        downloads.append(data)
    return downloads


@dataclass
class _Server:
    client: ComfyClient
    down_until: float = 0.0  # monotonic time; 0 = up
    failures: int = 0  # failures in a row
    dropped: bool = False


@dataclass
class _Job:
    index: int
    shot: object
    outcome: ShotOutcome
    tried: set = field(default_factory=set)


class _Scheduler:
    """Hands shots to one worker thread per server and applies the retry and pause rules."""

    def __init__(self, config, workflow, node_id, jobs, report):
        self.config, self.workflow, self.node_id, self.report = config, workflow, node_id, report
        self.servers = [_Server(ComfyClient(url, config.request_timeout)) for url in config.servers]
        self.pending = deque(jobs)
        self.total, self.done = len(jobs), 0
        self.in_flight = 0
        self.client_id = uuid.uuid4().hex
        self.go = threading.Event()
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.crash = None  # an unexpected exception from a worker, re-raised after the summary
        self.workers_left = 0

    def check_servers(self):
        """Ping every server once so a wrong address shows at once; ValueError if none answers."""
        reasons = []
        for server in self.servers:
            try:
                server.client.ping()
            except ServerUnavailable as exc:
                reasons.append(str(exc))
                self._server_failed(server, exc)
        if len(reasons) == len(self.servers):
            raise ValueError("no server answers; is ComfyUI running there (with --listen when it is on another "
                             "machine)?\n  " + "\n  ".join(reasons))

    def run(self):
        self.workers_left = len(self.servers)
        for server in self.servers:
            threading.Thread(target=self._work, args=(server,), name=f"render {server.client.url}", daemon=True).start()
        try:
            self.go.set()  # workers start only now, so a Ctrl-C during thread start-up has nothing to stop
            self._wait_for_workers()
        except KeyboardInterrupt:
            self.report("interrupted: finishing the requests in progress; run the same command again to resume")
            self._halt()
            self._wait_for_workers()
        self._give_up_on_leftovers()

    def _wait_for_workers(self):
        # Not Thread.join: on Python < 3.12 a Ctrl-C inside join() can mark a running thread as ended.
        with self.cond:
            while self.workers_left:
                self.cond.wait(0.2)

    def _halt(self):
        with self.cond:
            self.stop.set()
            self.cond.notify_all()

    def _finished(self):
        return self.stop.is_set() or (not self.pending and self.in_flight == 0)

    def _work(self, server):
        try:
            self.go.wait()
            while self._wait_until_up(server):
                job = self._take(server)
                if job is None:
                    return
                self._attempt(server, job)
        finally:
            with self.cond:
                self.workers_left -= 1
                self.cond.notify_all()

    def _wait_until_up(self, server):
        while not server.dropped:
            if not server.down_until:
                return True
            with self.cond:
                while not self._finished() and time.monotonic() < server.down_until:
                    self.cond.wait(server.down_until - time.monotonic())
                if self._finished():
                    return False
            try:
                server.client.ping()
            except ServerUnavailable as exc:
                self._server_failed(server, exc)
            else:
                server.down_until, server.failures = 0.0, 0
                self.report(f"{server.client.url} answers again")
        return False

    def _server_failed(self, server, exc):
        """Pause a failing server, or drop it after too many failures in a row."""
        with self.cond:
            server.failures += 1
            if server.failures >= self.config.server_failures:
                server.dropped = True
                self.report(f"{server.client.url} dropped after {server.failures} failures in a row ({exc})")
                self.cond.notify_all()
            else:
                server.down_until = time.monotonic() + self.config.cooldown
                self.report(f"{server.client.url} paused for {self.config.cooldown:g} s: {exc}")

    def _take(self, server):
        with self.cond:
            while not self._finished():
                job = self._pick(server)
                if job is not None:
                    self.pending.remove(job)
                    self.in_flight += 1
                    return job
                self.cond.wait(1.0)
            return None

    def _pick(self, server):
        """A shot this server has not tried; one it has, only once every other live server tried it too."""
        url = server.client.url
        for job in self.pending:
            if url not in job.tried:
                return job
        others = [s.client.url for s in self.servers if s is not server and not s.dropped]
        return next((job for job in self.pending if all(other in job.tried for other in others)), None)

    def _attempt(self, server, job):
        url, outcome = server.client.url, job.outcome
        outcome.attempts += 1
        job.tried.add(url)
        started = time.monotonic()
        retry, error, final_status = True, None, "failed"
        try:
            job_workflow = shot_workflow(self.workflow, self.node_id, job.shot, job.index)
            images = render_on(server.client, job_workflow, self.client_id,
                               self.config.shot_timeout, self.config.poll_interval, self.stop)
            self._save(job, images)
        except ServerUnavailable as exc:
            error = str(exc)
            self._server_failed(server, exc)
        except ShotError as exc:
            error, retry = str(exc), exc.retry
            server.failures = 0  # it answered: the server itself works
        except _Stopped:
            error, retry, final_status = "interrupted before the frame arrived", False, "interrupted"
        except SaveError as exc:
            error, retry = str(exc), False
            self.report(f"stopping: {exc}")
            self._halt()
        except Exception as exc:  # a bug: stop the run, finish the summary, then re-raise in run_batch
            self.crash = exc
            error, retry = f"internal error: {exc!r}", False
            self._halt()
        else:
            server.failures = 0
            outcome.status, outcome.server, outcome.seconds = "rendered", url, round(time.monotonic() - started, 3)
        self._settle(job, url, error, retry, final_status)

    def _save(self, job, images):
        out = Path(self.config.output)
        shot_id = job.shot.shot_id
        extras = [out / EXTRAS_FOLDER / f"{shot_id}-{number}.png" for number in range(2, len(images) + 1)]
        for path, data in zip(extras, images[1:]):
            write_bytes(path, data)
        write_bytes(out / f"{shot_id}.png", images[0])  # last: its presence means the shot is complete
        job.outcome.file = str(out / f"{shot_id}.png")
        job.outcome.extras = [str(path) for path in extras]

    def _settle(self, job, url, error, retry, final_status):
        outcome = job.outcome
        with self.cond:
            self.in_flight -= 1
            if error is None:
                self.done += 1
                self.report(f"[{self.done}/{self.total}] {outcome.shot_id}: rendered on {url} "
                            f"in {outcome.seconds:.1f} s -> {outcome.file}")
            else:
                detail = error.removeprefix(f"{url}: ").removeprefix(f"{url} ")  # the server is named once
                outcome.errors.append(f"attempt {outcome.attempts} on {url}: {detail}")
                if retry and outcome.attempts < self.config.attempts and not self.stop.is_set():
                    self.pending.appendleft(job)
                    self.report(f"{outcome.shot_id}: attempt {outcome.attempts} on {url} failed, will retry: {error}")
                else:
                    self.done += 1
                    outcome.status = final_status
                    outcome.error = error
                    self.report(f"[{self.done}/{self.total}] {outcome.shot_id}: FAILED after "
                                f"{outcome.attempts} attempt(s): {error}")
            self.cond.notify_all()

    def _give_up_on_leftovers(self):
        for job in self.pending:
            outcome = job.outcome
            if self.stop.is_set():
                outcome.status, outcome.error = "interrupted", "not started before the run was interrupted"
            else:
                outcome.status = "failed"
                outcome.error = "no server left to render on: every server was dropped"
                self.report(f"{outcome.shot_id}: FAILED: {outcome.error}")
        self.pending.clear()


def _prepare(config, report):
    """Workflow, shot node id and jobs (shots still to render) plus outcomes for every shot."""
    workflow = load_workflow(config.workflow)
    node_id = find_shot_node(workflow, config.shot_node)
    shot_list = load_shot_file(config.shots).raise_if_problems()
    for warning in shot_list.warnings:
        report(f"note: {config.shots} {warning}")
    shots = shot_list.shots
    line_problems = []
    for shot in shots:
        try:
            format_shot_line(shot)
        except ValueError as exc:
            line_problems.append(f"  {exc}")
    if line_problems:
        raise ValueError(f"{config.shots}: some shots can't be sent as one line:\n" + "\n".join(line_problems))
    outcomes, jobs = [], []
    for index, shot in enumerate(shots):
        outcome = ShotOutcome(shot.shot_id)
        frame = Path(config.output) / f"{shot.shot_id}.png"
        if readable_image(frame):
            outcome.status, outcome.file = "skipped", str(frame)
        else:
            if frame.exists():
                report(f"{shot.shot_id}: {frame} is not a readable image; rendering it again")
            jobs.append(_Job(index, shot, outcome))
        outcomes.append(outcome)
    return workflow, node_id, shots, outcomes, jobs


def run_batch(config, report=print):
    """Render every shot not yet rendered, then write the summary and the contact sheet."""
    config.check()
    started = datetime.now(timezone.utc)
    workflow, node_id, shots, outcomes, jobs = _prepare(config, report)
    skipped = len(outcomes) - len(jobs)
    report(f"{len(outcomes)} shots: {skipped} already rendered, {len(jobs)} to render on "
           f"{len(config.servers)} server(s)")
    scheduler = _Scheduler(config, workflow, node_id, jobs, report)
    if jobs:
        scheduler.check_servers()
    scheduler.run()
    out = Path(config.output)
    summary_path = out / SUMMARY_NAME
    write_json(summary_path, {
        "workflow": str(config.workflow), "shots_file": str(config.shots), "servers": list(config.servers),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "shots": [asdict(outcome) for outcome in outcomes],
        "failed": [outcome.shot_id for outcome in outcomes if outcome.status in ("failed", "interrupted")],
    })
    if scheduler.crash is not None:
        raise scheduler.crash
    sheet_path = _write_sheet(config, shots, outcomes, report)
    return BatchResult(outcomes=outcomes, sheet=sheet_path, summary=summary_path)


def _placeholder(size):
    return Image.new("RGB", size, (70, 70, 74))


def _write_sheet(config, shots, outcomes, report):
    """The contact sheet of all frames present; shots without a frame get a grey placeholder."""
    with contextlib.ExitStack() as stack:
        frames = {outcome.shot_id: stack.enter_context(Image.open(outcome.file))
                  for outcome in outcomes if outcome.file}
        if not frames:
            report("no frames, so no contact sheet")
            return None
        placeholder_size = next(iter(frames.values())).size
        descriptions = [shot.description if shot.shot_id in frames else f"NOT RENDERED - {shot.description}"
                        for shot in shots]
        images = [frames.get(shot.shot_id) or _placeholder(placeholder_size) for shot in shots]
        title = config.title or f"{Path(config.workflow).stem} - {Path(config.shots).name}"
        sheet = contact_sheet(images, [shot.shot_id for shot in shots], descriptions, config.columns, title)
    path = Path(config.output) / SHEET_NAME
    save_sheet_png(path, sheet)
    if config.pdf:
        save_sheet_pdf(path.with_suffix(".pdf"), sheet)
    return path


def build_parser():
    parser = argparse.ArgumentParser(
        prog="batch_render.py",
        description="Render a shot list through a ComfyUI workflow on one or more running ComfyUI servers. "
                    "Each shot is saved as <out>/<shot_id>.png; shots already there are skipped, so "
                    "running the same command again resumes. A contact sheet and a JSON summary are "
                    f"written to <out>/{SHEET_NAME} and <out>/{SUMMARY_NAME}.",
        epilog="Exit status: 0 all shots rendered, 1 some shots failed (listed at the end), 2 bad input, "
               "130 interrupted.")
    parser.add_argument("--workflow", required=True, type=Path, metavar="FILE", help=config_help("workflow"))
    parser.add_argument("--shots", required=True, type=Path, metavar="FILE", help=config_help("shots"))
    parser.add_argument("--server", dest="servers", action="append", required=True, metavar="URL",
                        help=config_help("servers"))
    parser.add_argument("--out", dest="output", required=True, type=Path, metavar="DIR", help=config_help("output"))
    parser.add_argument("--shot-node", metavar="ID", help=config_help("shot_node"))
    for name, kind in (("attempts", int), ("shot_timeout", float), ("request_timeout", float),
                       ("poll_interval", float), ("cooldown", float), ("server_failures", int), ("columns", int)):
        default = next(f.default for f in fields(BatchConfig) if f.name == name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default,
                            metavar="N" if kind is int else "SECONDS", help=f"{config_help(name)} Default: {default:g}.")
    parser.add_argument("--title", metavar="TEXT", help=config_help("title"))
    parser.add_argument("--pdf", action="store_true", help=config_help("pdf"))
    return parser


def main(argv=None, report=print):
    """Command-line entry point; returns the exit status."""
    config = BatchConfig(**vars(build_parser().parse_args(argv)))
    try:
        result = run_batch(config, report)
    except ValueError as exc:
        report(f"error: {exc}")
        return 2
    except SaveError as exc:
        report(f"error: {exc}")
        return 1
    failed = result.failed
    report(f"done: {len(result.outcomes) - len(failed)} of {len(result.outcomes)} shots have frames; "
           f"summary {result.summary}" + (f", contact sheet {result.sheet}" if result.sheet else ""))
    if not failed:
        return 0
    report(f"{len(failed)} shot(s) have no frame:")
    for outcome in failed:
        report(f"  {outcome.shot_id} ({outcome.status}, {outcome.attempts} attempt(s)): {outcome.error}")
    interrupted = any(outcome.status == "interrupted" for outcome in failed)
    return 130 if interrupted else 1
