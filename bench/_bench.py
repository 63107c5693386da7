"""Shared by the benchmark scripts: the in-process ComfyUI, bench-only nodes, peak-memory
measurement, the machine description and the RESULTS.md log.

Benchmarks are scripts, not tests: they print a table and append it to bench/RESULTS.md.
ComfyUI runs in this process through tests/comfy_host.py (its real executor and node
registry), with `--cpu` and PyTorch SDPA attention on both sides of every comparison.
"""

import ctypes
import datetime
import gc
import importlib.machinery
import importlib.util
import os
import platform
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"  # git-ignored: ComfyUI base folder, caches, LoRAs written by runs
RESULTS = ROOT / "bench" / "RESULTS.md"
THREADS_HELP = ("torch intra-op threads (default 1; 0 = torch's default, all cores). One thread keeps the "
                "numbers steady when other work shares the CPU: a second thread that has to wait for a busy "
                "core stalls every parallel op, which can slow a step tenfold")


def import_library():
    """The pack as the package `lookdev` (as tests/conftest.py does), plus tests/ and scripts/
    on sys.path for comfy_host and tiny_models."""
    if "lookdev" not in sys.modules:
        spec = importlib.machinery.ModuleSpec("lookdev", None, is_package=True)
        module = importlib.util.module_from_spec(spec)
        module.__path__ = [str(ROOT)]
        sys.modules["lookdev"] = module
    for folder in (ROOT / "tests", ROOT / "scripts"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def start_comfy(threads=None):
    """ComfyUI imported into this process with the pack loaded; returns comfy_host.ComfyHost."""
    import_library()
    import torch

    if threads:
        torch.set_num_threads(threads)
    import comfy_host

    host = comfy_host.start_in_process(WORK / "comfy")
    host.step_times = []  # (perf_counter(), process_time()) at each progress-bar update, cleared per run
    host.memory = None  # a PeakMemory told of each step, while one is open
    _time_progress(host)
    return host


def _time_progress(host):
    """Timestamp every ProgressBar update: both trainers report each optimizer step through it."""
    import comfy.model_management
    import comfy.utils

    def hook(value, total, preview_image, prompt_id=None, node_id=None):
        host.step_times.append((time.perf_counter(), time.process_time()))
        if host.memory is not None:
            host.memory.step()
        comfy.model_management.throw_exception_if_processing_interrupted()

    comfy.utils.set_progress_bar_global_hook(hook)


def register_nodes(host, objects):
    """Bench-only nodes. For each key of `objects` ({key: (ComfyUI type, value, is_list)}),
    `LookDevBench_<key>` outputs the value (models, datasets, latent and conditioning lists
    prepared outside the timed run; a list output when is_list). `LookDevTest_Capture` (the
    tests' node) keeps any value in host.captured[label]."""
    import comfy_host

    comfy_host.register_test_nodes(host, tiny_bundle=None)
    for key, (kind, value, is_list) in objects.items():
        host.nodes.NODE_CLASS_MAPPINGS[f"LookDevBench_{key}"] = _object_node(kind, value, is_list)


def _object_node(kind, value, is_list):
    class Object:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        RETURN_TYPES = (kind,)
        OUTPUT_IS_LIST = (is_list,)
        FUNCTION = "get"
        CATEGORY = "bench"

        def get(self):
            return (list(value) if is_list else value,)

    return Object


def step_seconds(host, skip):
    """(wall, CPU) seconds of each optimizer step after the first `skip` (warm-up), from the
    progress hook. CPU seconds (all of this process's threads) are less sensitive to other
    work on the machine than wall seconds."""
    stamps = host.step_times[skip:]
    return ([b[0] - a[0] for a, b in zip(stamps, stamps[1:])],
            [b[1] - a[1] for a, b in zip(stamps, stamps[1:])])


# --- memory -------------------------------------------------------------------------------------

def _status_kib(field):
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1))


def _release_free_memory():
    """Hand freed heap pages back to the OS so the next baseline is what is really in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _can_reset_peak():
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak resident memory of this process above its RSS at the start of a block (MiB): over
    the whole block (`above`), and over the optimizer steps (`training`: from the end of the
    first step to the end of the last, each step reported by calling step()).

    Linux: the kernel's own high-water mark (VmHWM), reset via /proc/self/clear_refs at the
    start and again at the first step; it sees every page touched, however briefly. Elsewhere,
    or where the reset is not allowed: RSS sampled every millisecond in a thread (psutil).
    """

    method = "kernel VmHWM (reset via /proc/self/clear_refs) minus RSS at start"

    def __enter__(self):
        _release_free_memory()
        self._kernel = _can_reset_peak()
        self._first_step = self._last_step = None
        self._before_steps = self._training = None
        if self._kernel:
            self.baseline = _status_kib("VmRSS") / 1024
        else:
            import psutil

            self.method = "psutil RSS sampled every 1 ms minus RSS at start"
            proc = psutil.Process()
            self.baseline = proc.memory_info().rss / 2**20
            self._samples, self._stop = [], threading.Event()

            def sample():
                while not self._stop.is_set():
                    self._samples.append((time.perf_counter(), proc.memory_info().rss / 2**20))
                    time.sleep(0.001)

            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def step(self):
        now = time.perf_counter()
        if self._kernel:
            peak = _status_kib("VmHWM") / 1024
            if self._first_step is None:
                self._before_steps = peak
                _can_reset_peak()
            else:
                self._training = peak
        self._first_step = self._first_step or now
        self._last_step = now

    def __exit__(self, *exc):
        if self._kernel:
            self.peak = max(_status_kib("VmHWM") / 1024, self._before_steps or 0.0)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(rss for _, rss in self._samples)
            if self._first_step is not None:
                during = [rss for t, rss in self._samples if self._first_step <= t <= self._last_step]
                self._training = max(during) if during else None
        self.above = self.peak - self.baseline
        self.training = None if self._training is None else self._training - self.baseline
        return False


# --- machine and results ------------------------------------------------------------------------

def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(host=None):
    """One line describing where and with what the numbers were taken."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    parts = [f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
             f"CPU {cpu_model()} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})",
             f"torch {torch.__version__}"]
    if host is not None:
        parts.append(f"ComfyUI {host.version}")
    parts.append(f"load avg at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    return "; ".join(parts)


def load_now():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def table(headers, rows):
    """A GitHub-markdown table; also readable printed."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def parser(doc, threads=True):
    """A bench's argument parser: its docstring's first paragraph, --no-record and (unless the bench
    sets threads its own way) --threads."""
    import argparse

    made = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if threads:
        made.add_argument("--threads", type=int, default=1, help=THREADS_HELP)
    made.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    return made


def publish(title, machine_line, body, record=True):
    """Print a bench's results and, when `record`, append them to bench/RESULTS.md."""
    print()
    print(body)
    if record:
        append_results(title, machine_line, body)


def append_results(title, machine_line, body):
    """Append a dated section to bench/RESULTS.md (created with a header if missing)."""
    import_library()
    from lookdev.trainer.fileio import write_text

    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nAppended by the scripts in bench/; newest last.\n"
    section = f"\n## {title}\n\n{machine_line}\n\n{body.rstrip()}\n"
    write_text(RESULTS, old.rstrip("\n") + "\n" + section)


def median(values):
    return statistics.median(values) if values else float("nan")
