#!/usr/bin/env python3
"""Render a LookDev shot list on running ComfyUI servers, without the browser.

    python scripts/batch_render.py --workflow storyboard_api.json --shots shots.csv \
        --server http://127.0.0.1:8188 --server http://10.0.0.7:8188 --out renders/seq01

Run with --help for every option. Needs only Python and Pillow, not ComfyUI: the servers do the rendering.

Each shot is rendered by queueing a copy of the workflow whose LookDev Shot List node holds just
that shot (trainer/render/batch.py builds it). The images the workflow saves to the server's
output folder are collected: those of LookDev Storyboard Render (which saves its frames itself)
or of a Save Image node. Frames land in the output folder as `<shot_id>.png`, written only once a
complete image is downloaded, and shots whose frame already exists are skipped, so re-running
the same command resumes a stopped batch. Files of the batch itself start with "_" (shot ids
can't), so they never collide with a frame: `_contact_sheet.png`, `_batch_summary.json`,
`_extras/` for additional images a workflow saves.

Servers work in parallel, one shot each at a time. A shot that fails is retried, preferably on a
server that has not tried it yet, up to `attempts` times. A server that can't be reached (or does
not finish a shot within `shot_timeout`) is paused for `cooldown` seconds, then checked; after
`server_failures` failures in a row it is dropped for the rest of the run.
"""

import argparse
import contextlib
import signal
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from _pack import alias_pack

alias_pack()

# noqa: E402 below: these need the alias above.
from PIL import Image  # noqa: E402

from lookdev.trainer.fileio import SaveError, write_bytes, write_json  # noqa: E402
from lookdev.trainer.options import REQUIRED, help_of, option  # noqa: E402
from lookdev.trainer.render.batch import (  # noqa: E402
    EXTRAS_FOLDER, SHEET_NAME, SUMMARY_NAME, check_png, find_shot_node, load_workflow, readable_image, shot_workflow,
)
from lookdev.trainer.render.comfy_http import (  # noqa: E402
    ComfyClient, ServerUnavailable, ShotError, execution_problem, output_images,
)
from lookdev.trainer.render.sheet import contact_sheet, save_sheet_pdf, save_sheet_png  # noqa: E402
from lookdev.trainer.render.shots import format_shot_line, load_shot_file  # noqa: E402


@dataclass
class BatchConfig:
    workflow: Path = option(REQUIRED, "Workflow in ComfyUI API format (Workflow > Export (API)) with one LookDev "
                                      "Shot List node.")
    shots: Path = option(REQUIRED, "Shot list: a .csv with a header (shot_id, description, seed, aspect, negative) "
                                   "or a text file of 'ID | description | seed | aspect' lines.")
    servers: list = option(REQUIRED, "ComfyUI server address, e.g. http://127.0.0.1:8188; repeat for several "
                                     "servers.")
    output: Path = option(REQUIRED, "Folder for the frames (<shot_id>.png), the contact sheet and the summary.")
    shot_node: str | None = option(None, "Id of the Shot List node to fill, when the workflow has several.")
    attempts: int = option(3, "Tries per shot before it counts as failed.")
    shot_timeout: float = option(1800.0, "Seconds a server may take for one shot, queue wait included.")
    request_timeout: float = option(30.0, "Seconds to wait for any single HTTP answer.")
    poll_interval: float = option(1.0, "Seconds between checks whether a shot is done.")
    cooldown: float = option(60.0, "Seconds a failing server is left alone before it is checked again.")
    server_failures: int = option(3, "Failures in a row after which a server is dropped for this run.")
    columns: int = option(4, "Frames per row on the contact sheet.")
    title: str | None = option(None, "Contact sheet title (default: workflow and shot list names).")
    pdf: bool = option(False, "Also write the contact sheet as _contact_sheet.pdf.")

    def validate(self):
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


_TICK = 0.2  # seconds; the longest the scheduler blocks at a time


class _Scheduler:
    """Hands shots to the servers, one shot per server at a time. Renders run on a thread pool;
    every decision (which shot goes where, retries, pauses, drops) is taken in the calling
    thread as renders finish, so the bookkeeping needs no locks."""

    def __init__(self, config, workflow, node_id, jobs, report):
        self.config, self.workflow, self.node_id, self.report = config, workflow, node_id, report
        self.servers = [_Server(ComfyClient(url, config.request_timeout)) for url in config.servers]
        self.pending = deque(jobs)
        self.total, self.done = len(jobs), 0
        self.client_id = uuid.uuid4().hex
        self.stop = threading.Event()  # Ctrl-C, a full disk or a bug: finish what runs, start nothing
        self.crash = None  # an unexpected exception from a render, re-raised after the summary

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
        running = {}  # future -> (server, job); job None for a paused server's check
        with self._ctrl_c_stops(), ThreadPoolExecutor(len(self.servers), thread_name_prefix="render") as pool:
            self._dispatch(pool, running)
            for future in list(running):  # only after a stop: let the requests in progress end
                future.exception()
                self._finish(future, *running.pop(future))
        self._give_up_on_leftovers()

    @contextlib.contextmanager
    def _ctrl_c_stops(self):
        """The first Ctrl-C sets `stop` instead of raising KeyboardInterrupt, which could land
        inside the thread pool's locks; a second one interrupts as usual."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)

        def stop(signum, frame):
            signal.signal(signal.SIGINT, previous)
            self.report("interrupted: finishing the requests in progress; run the same command again to resume")
            self.stop.set()

        signal.signal(signal.SIGINT, stop)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _dispatch(self, pool, running):
        while not self.stop.is_set():
            work_left = bool(self.pending) or any(job for _, job in running.values())
            busy = {id(server) for server, _ in running.values()}
            for server in self.servers:
                if server.dropped or id(server) in busy or not work_left:
                    continue
                if server.down_until:
                    if time.monotonic() >= server.down_until:
                        running[pool.submit(server.client.ping)] = (server, None)
                    continue
                job = self._pick(server)
                if job is not None:
                    self.pending.remove(job)
                    job.outcome.attempts += 1
                    job.tried.add(server.client.url)
                    running[pool.submit(self._render, server, job)] = (server, job)
            if not running:
                paused = [s.down_until for s in self.servers if not s.dropped and s.down_until]
                if not self.pending or not paused:
                    return
                self.stop.wait(min(_TICK, max(0.0, min(paused) - time.monotonic())))
                continue
            paused = [s.down_until for s in self.servers if not s.dropped and s.down_until and id(s) not in busy]
            # Short waits: a Ctrl-C (see _ctrl_c_stops) is handled only when this thread wakes up.
            timeout = min([_TICK] + [max(0.0, t - time.monotonic()) for t in paused])
            finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in finished:
                self._finish(future, *running.pop(future))

    def _render(self, server, job):
        """Runs on the pool: render one shot on one server and save its frame; returns the seconds."""
        started = time.monotonic()
        job_workflow = shot_workflow(self.workflow, self.node_id, job.shot, job.index)
        images = render_on(server.client, job_workflow, self.client_id,
                           self.config.shot_timeout, self.config.poll_interval, self.stop)
        self._save(job, images)
        return round(time.monotonic() - started, 3)

    def _finish(self, future, server, job):
        if job is None:
            self._checked(server, future.exception())
        else:
            self._settle(server, job, future)

    def _checked(self, server, error):
        if error is None:
            server.down_until, server.failures = 0.0, 0
            self.report(f"{server.client.url} answers again")
        elif isinstance(error, ServerUnavailable):
            self._server_failed(server, error)
        else:
            raise error

    def _server_failed(self, server, exc):
        """Pause a failing server, or drop it after too many failures in a row."""
        server.failures += 1
        if server.failures >= self.config.server_failures:
            server.dropped = True
            self.report(f"{server.client.url} dropped after {server.failures} failures in a row ({exc})")
        else:
            server.down_until = time.monotonic() + self.config.cooldown
            self.report(f"{server.client.url} paused for {self.config.cooldown:g} s: {exc}")

    def _pick(self, server):
        """A shot this server has not tried; one it has, only once every other live server tried it too."""
        url = server.client.url
        for job in self.pending:
            if url not in job.tried:
                return job
        others = [s.client.url for s in self.servers if s is not server and not s.dropped]
        return next((job for job in self.pending if all(other in job.tried for other in others)), None)

    def _settle(self, server, job, future):
        url, outcome = server.client.url, job.outcome
        retry, error, final_status = True, None, "failed"
        exc = future.exception()
        if exc is None:
            server.failures = 0
            outcome.status, outcome.server, outcome.seconds = "rendered", url, future.result()
        elif isinstance(exc, ServerUnavailable):
            error = str(exc)
            self._server_failed(server, exc)
        elif isinstance(exc, ShotError):
            error, retry = str(exc), exc.retry
            server.failures = 0  # it answered: the server itself works
        elif isinstance(exc, _Stopped):
            error, retry, final_status = "interrupted before the frame arrived", False, "interrupted"
        elif isinstance(exc, SaveError):
            error, retry = str(exc), False
            self.report(f"stopping: {exc}")
            self.stop.set()
        else:  # a bug: stop the run, finish the summary, then re-raise in run_batch
            self.crash = exc
            error, retry = f"internal error: {exc!r}", False
            self.stop.set()
        if error is None:
            self.done += 1
            self.report(f"[{self.done}/{self.total}] {outcome.shot_id}: rendered on {url} "
                        f"in {outcome.seconds:.1f} s -> {outcome.file}")
            return
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

    def _save(self, job, images):
        out = Path(self.config.output)
        shot_id = job.shot.shot_id
        extras = [out / EXTRAS_FOLDER / f"{shot_id}-{number}.png" for number in range(2, len(images) + 1)]
        for path, data in zip(extras, images[1:]):
            write_bytes(path, data)
        write_bytes(out / f"{shot_id}.png", images[0])  # last: its presence means the shot is complete
        job.outcome.file = str(out / f"{shot_id}.png")
        job.outcome.extras = [str(path) for path in extras]

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
    config.validate()
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
    parser.add_argument("--workflow", required=True, type=Path, metavar="FILE", help=help_of(BatchConfig, "workflow"))
    parser.add_argument("--shots", required=True, type=Path, metavar="FILE", help=help_of(BatchConfig, "shots"))
    parser.add_argument("--server", dest="servers", action="append", required=True, metavar="URL",
                        help=help_of(BatchConfig, "servers"))
    parser.add_argument("--out", dest="output", required=True, type=Path, metavar="DIR", help=help_of(BatchConfig, "output"))
    parser.add_argument("--shot-node", metavar="ID", help=help_of(BatchConfig, "shot_node"))
    for name, kind in (("attempts", int), ("shot_timeout", float), ("request_timeout", float),
                       ("poll_interval", float), ("cooldown", float), ("server_failures", int), ("columns", int)):
        default = BatchConfig.__dataclass_fields__[name].default
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default,
                            metavar="N" if kind is int else "SECONDS", help=f"{help_of(BatchConfig, name)} Default: {default:g}.")
    parser.add_argument("--title", metavar="TEXT", help=help_of(BatchConfig, "title"))
    parser.add_argument("--pdf", action="store_true", help=help_of(BatchConfig, "pdf"))
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


if __name__ == "__main__":
    sys.exit(main())
