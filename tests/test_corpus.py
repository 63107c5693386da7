"""The bad-input corpus: the broken, odd and hostile inputs a filmmaker's ComfyUI meets when it
runs for hours with other people's files, generated here (no binary fixtures) and swept through
the real nodes on ComfyUI's executor, and a subset through a real `main.py --cpu` server.

Every case is one row of a table: what is made, and what LookDev must do with it - stop with an
error that names the file or input at fault, or carry on and list what it skipped (or remarked
on) in the node's report. After every error a good prompt must still run: a bad input never
takes the server down. The library tests (test_dataset_*, test_lora_*, test_render_shots) check
each reader in detail; this file is the one place that feeds the whole corpus to the nodes.
"""

import io
import math
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from PIL import Image

from dataset_files import flat_png, noise_image, rgb16_png, write_image
from dataset_prompts import loader
from lora_files import adapter_tensors, lora_tensors, write_lora
from lookdev.trainer.fileio import write_safetensors
from lookdev.trainer.lora.io import read_lora, save_lora

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One corpus row: `expect` is "error" (the run stops; its message holds every fragment of
    `words`) or "ok" (the run succeeds; the node's report holds every fragment of `words` and
    none of `absent`). `make` builds the input; what it takes depends on the table."""

    name: str
    make: object
    expect: str
    words: tuple
    absent: tuple = field(default=())


def ids(cases):
    return [case.name for case in cases]


def assert_outcome(case, result, report=None):
    if case.expect == "error":
        assert not result.success, f"{case.name}: the run succeeded"
        # A folder that is missing, empty or unreadable is refused when queued (Load Dataset's
        # VALIDATE_INPUTS); anything else fails in the node.
        text = result.error["exception_message"] if result.error else result.refusal
        assert text, f"{case.name}: no error message: {result.messages}"
        assert "Traceback" not in text
    else:
        assert result.success, (result.error or {}).get("exception_message")
        text = report
    for words in case.words:
        assert words in text, f"{case.name}: {words!r} not in:\n{text}"
    for words in case.absent:
        assert words not in text, f"{case.name}: {words!r} in:\n{text}"
    return text


# --- files --------------------------------------------------------------------------------------


def jpeg_bytes(size=(96, 96), seed=0, mode="RGB"):
    buffer = io.BytesIO()
    noise_image(size, seed).convert(mode).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def animation(path, fmt):
    frames = [Image.new("RGB", (96, 96), colour) for colour in ((250, 10, 10), (10, 10, 250))]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def palette_with_transparency(path):
    img = noise_image((96, 96), seed=4).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.save(path, transparency=0)


def corrupt_png(path):
    data = bytearray((Path(write_image(path, (96, 96), seed=5))).read_bytes())
    data[60:200] = bytes(140)  # the header survives, the image data does not
    path.write_bytes(bytes(data))


def with_good(maker):
    """A folder maker: one good image (so the folder stays usable) beside what `maker` adds."""
    def make(folder):
        write_image(folder / "good.png", (96, 96), seed=1)
        maker(folder)
        return str(folder)
    return make


def files(contents):
    """A folder maker writing {relative name: bytes}."""
    def maker(folder):
        for name, data in contents.items():
            (folder / name).write_bytes(data)
    return maker


def call(fn, name, *args):
    return lambda folder: fn(folder / name, *args)


HUGE = (12000, 8000)

IMAGE_CASES = [
    Case("corrupt bytes", with_good(call(corrupt_png, "corrupt.png")), "ok",
         ("Skipped (1):", "  corrupt.png: corrupt or truncated image data")),
    Case("random bytes", with_good(files({"noise.jpg": bytes(range(256)) * 8})), "ok",
         ("  noise.jpg: not a recognised image format",)),
    Case("zero-byte file", with_good(files({"empty.jpg": b""})), "ok",
         ("  empty.jpg: empty file (0 bytes)",)),
    Case("truncated JPEG", with_good(files({"cut.jpg": jpeg_bytes()[:1500]})), "ok",
         ("  cut.jpg: corrupt or truncated image data",)),
    Case("1x1 image", with_good(lambda f: Image.new("RGB", (1, 1)).save(f / "dot.png")), "ok",
         ("  dot.png: too small: 1x1 px; LookDev needs at least 64 px on each side",)),
    # Memory: see test_huge_images_load_in_bounded_memory (16-bit grey and RGBA, the converted kinds).
    Case("12000x8000 16-bit grey PNG", with_good(call(flat_png, "scan.png", *HUGE, 16, 0)), "ok",
         ("2 images",), ("Skipped",)),
    Case("CMYK JPEG", with_good(files({"print.jpg": jpeg_bytes(seed=2, mode="CMYK")})), "ok",
         ("2 images",), ("Skipped",)),
    Case("16-bit RGB PNG", with_good(call(rgb16_png, "deep.png", 96, 96, (65535, 32768, 0))), "ok",
         ("2 images",), ("Skipped",)),
    Case("palette PNG with transparency", with_good(call(palette_with_transparency, "pal.png")), "ok",
         ("2 images",), ("Skipped",)),
    Case("animated GIF", with_good(call(animation, "anim.gif", "GIF")), "ok",
         ("2 images", "  anim.gif: animated (2 frames): only the first frame is used"), ("Skipped",)),
    Case("animated WebP", with_good(call(animation, "anim.webp", "WEBP")), "ok",
         ("2 images", "  anim.webp: animated (2 frames): only the first frame is used"), ("Skipped",)),
    Case("text file named .png", with_good(files({"notes.png": b"INT. HARBOR - DAWN\nFog.\n"})), "ok",
         ("  notes.png: a text file, not an image (whatever the extension says)",)),
    Case("JPEG bytes named .png", with_good(files({"photo.png": jpeg_bytes(seed=3)})), "ok",
         ("2 images",), ("Skipped",)),
]

CAPTION_CASES = [
    Case("caption not UTF-8", with_good(files({"good.txt": "café, nuit".encode("cp1252")})), "ok",
         ("  good.txt: caption is not UTF-8 text: unreadable characters were replaced with \ufffd; "
          "re-save the file as UTF-8",)),
    Case("empty caption", with_good(files({"good.txt": b"  \n"})), "ok",
         ("  good.txt: caption file is empty; the image is captioned by the template alone",)),
    Case("10,000-word caption", with_good(files({"good.txt": b"rain " * 10_000})), "ok",
         ("  good.txt: caption is 10000 words long; text encoders read about 75 tokens at a time",)),
]


def in_folder(maker):
    """A folder-table maker (folder, input folder) -> the folder typed, from a folder maker."""
    def make(folder, input_dir):
        maker(folder)
        return str(folder)
    return make


def unreadable(subfolder):
    """A folder, or a subfolder beside a good image, that cannot be listed. Root reads any folder
    whatever its mode: there `permission_denied` makes os.scandir refuse it as it would anyone."""
    def make(folder):
        target = folder / subfolder if subfolder else folder
        write_image(target / "locked.png", (96, 96), seed=2)
        if subfolder:
            write_image(folder / "good.png", (96, 96), seed=1)
        target.chmod(0)
    return in_folder(make)


def symlink_loop(folder):
    write_image(folder / "good.png", (96, 96), seed=1)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "a.png").symlink_to(folder / "b.png")
    (folder / "b.png").symlink_to(folder / "a.png")


def symlink_outside(folder):
    write_image(folder / "good.png", (96, 96), seed=1)
    outside = folder.parent / f"{folder.name}_private"
    write_image(outside / "secret.png", (96, 96), seed=9)
    (outside / "secret.txt").write_text("private words", encoding="utf-8")
    (folder / "secret.png").symlink_to(outside / "secret.png")
    (folder / "good.txt").symlink_to(outside / "secret.txt")
    (folder / "elsewhere").symlink_to(outside, target_is_directory=True)


def named_pipes(folder):
    write_image(folder / "good.png", (96, 96), seed=1)
    os.mkfifo(folder / "good.txt")  # read, it would wait for a writer forever
    os.mkfifo(folder / "still.png")


def dotdot(escape):
    """A folder typed relative to ComfyUI's input folder with '..' in it."""
    def make(folder, input_dir):
        inside = input_dir / f"corpus_{folder.parent.name}"
        write_image(inside / "good.png", (96, 96), seed=1)
        return f"{inside.name}/../../{folder.name}" if escape else f"{inside.name}/sub/../"
    return make


FOLDER_CASES = [
    Case("missing folder", lambda folder, input_dir: str(folder / "nowhere"), "error",
         ("dataset folder ", "nowhere does not exist; check the path")),
    Case("empty folder", in_folder(lambda folder: None), "error", ("holds no files; add 10-30 reference images",)),
    Case("only unsupported files",
         in_folder(files({"a.psd": b"8BPS", "b.mov": b"\0\0\0\x14ftyp", "c.heic": b"\0\0\0\x18ftypheic"})),
         "error", ("3 files, none usable: 3 unsupported type. See the dataset report",)),
    Case("unreadable folder", unreadable(""), "error",
         ("cannot read dataset folder ", "Permission denied; check its permissions")),
    Case("unreadable subfolder", unreadable("locked"), "ok",
         ("  locked: cannot read this folder (Permission denied); its images are left out",)),
    Case("symlink loop", in_folder(symlink_loop), "ok",
         ("  loop: symlinked folder (pointing inside the dataset folder) is not followed",
          "  a.png: broken or looping symlink", "  b.png: broken or looping symlink")),
    Case("symlinks pointing outside", in_folder(symlink_outside), "ok",
         ("  secret.png: symlink points outside the dataset folder (to ",
          "  good.txt: symlink points outside the dataset folder",
          "  elsewhere: symlinked folder (pointing outside the dataset folder) is not followed"),
         ("private words",)),
    Case("named pipes named like an image and a caption", in_folder(named_pipes), "ok",
         ("  good.txt: not a regular file (a named pipe, socket or device); left out",
          "  still.png: not a regular file")),
    Case("'..' leading out of the input folder", dotdot(escape=True), "error",
         ("leads out of ComfyUI's input folder", "(with '..'); use a folder inside it")),
    Case("'..' staying inside the input folder", dotdot(escape=False), "ok", ("1 images",)),
]


# --- the executor sweep -------------------------------------------------------------------------


def dataset_prompt(folder, label, **inputs):
    return {"1": loader(folder, **inputs),
            "2": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["1", 3], "label": label}}}


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus_good")
    write_image(folder / "frame.png", (96, 96), seed=11)
    return folder


@pytest.fixture
def still_works(comfy, good_folder):
    """Runs a good prompt (a dataset load that cannot come from the cache: its trigger is new)."""
    def check():
        label = f"good-{uuid.uuid4().hex[:8]}"
        result = comfy.run(dataset_prompt(good_folder, label, trigger=label))
        assert result.success and f"Trigger: '{label}'" in comfy.captured[label]
    return check


def permission_denied(monkeypatch, folder):
    """As root, whom a folder's mode does not stop: make os.scandir refuse the folders this case
    made unreadable (mode 000), with the error anyone else would get."""
    if os.geteuid() != 0:
        return
    real_scandir = os.scandir
    locked = {path for path in Path(folder).rglob("*") if path.is_dir() and not path.stat().st_mode & 0o777}
    if not Path(folder).stat().st_mode & 0o777:
        locked.add(Path(folder))

    def scandir(path="."):
        if Path(path) in locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def run_dataset_case(comfy, case, folder, typed, monkeypatch):
    permission_denied(monkeypatch, folder)
    label = f"corpus-{case.name}"
    result = comfy.run(dataset_prompt(typed, label), expect_error=case.expect == "error")
    monkeypatch.undo()
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        if not path.is_symlink() and path.is_dir():
            path.chmod(0o755)
    assert_outcome(case, result, comfy.captured.get(label))


@pytest.mark.parametrize("case", IMAGE_CASES + CAPTION_CASES, ids=ids(IMAGE_CASES + CAPTION_CASES))
def test_dataset_files(comfy, tmp_path, monkeypatch, still_works, case):
    folder = tmp_path / "refs"
    folder.mkdir()
    run_dataset_case(comfy, case, folder, case.make(folder), monkeypatch)
    still_works()


@pytest.mark.parametrize("case", FOLDER_CASES, ids=ids(FOLDER_CASES))
def test_dataset_folders(comfy, tmp_path, monkeypatch, still_works, case):
    folder = tmp_path / "refs"
    folder.mkdir()
    run_dataset_case(comfy, case, folder, case.make(folder, comfy.input_dir), monkeypatch)
    still_works()


PEAK_RSS = """
import resource, sys
sys.path.insert(0, sys.argv[1])
from _pack import alias_pack
alias_pack()
from lookdev.trainer.dataset.images import load_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = load_image(sys.argv[2], shrink_to=128)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(image.size[0], image.size[1], (after - before) * 1024)
"""


@pytest.mark.parametrize("bit_depth, color_type", [(16, 0), (8, 6)], ids=["16-bit grey", "RGBA"])
def test_huge_images_load_in_bounded_memory(tmp_path, bit_depth, color_type):
    """A 12000x8000 picture is decoded once at full size and reduced before any conversion: the
    load's peak memory stays within three times the image as 8-bit RGB (ru_maxrss of a fresh
    process; what the loader did before measured 3.1 GB and 1.2 GB here)."""
    path = flat_png(tmp_path / "huge.png", *HUGE, bit_depth, color_type)
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(ROOT / "scripts"), str(path)],
                         capture_output=True, text=True, check=True, timeout=120)
    width, height, grown = map(int, out.stdout.split())
    assert (width, height) == (194, 130)
    assert grown < 3 * HUGE[0] * HUGE[1] * 3, f"peak memory grew {grown / 2**20:.0f} MiB"


# --- LoRA files ---------------------------------------------------------------------------------


GOOD_LORA = "corpus_good.safetensors"


@pytest.fixture(scope="module")
def corpus_loras(comfy):
    """Writes the corpus' LoRA files (each case's `make` is a file name) and a good one into
    ComfyUI's loras folder."""
    folder = comfy.models_dir("loras")
    sd15 = comfy.tiny_bundle("sd15")
    data = write_lora(folder, GOOD_LORA, sd15, "sd15", seed=21, trigger_words=("inky",)).read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    pickled = io.BytesIO()
    torch.save(lora_tensors(sd15, "sd15", seed=22), pickled)
    flux = {f"lora_unet_double_blocks_{i}_img_attn_qkv.{part}": torch.zeros(shape)
            for i in range(2) for part, shape in (("lora_down.weight", (4, 32)), ("lora_up.weight", (96, 4)))}
    contents = {
        "corpus_truncated.safetensors": data[: len(data) * 2 // 3],
        "corpus_header_cut.safetensors": data[:100],
        "corpus_pickle.safetensors": pickled.getvalue(),
        "corpus_pickle.pt": pickled.getvalue(),
        "corpus_header_not_json.safetensors": data[:8] + data[8:header_end].replace(b'"', b"'", 4) + data[header_end:],
    }
    for name, content in contents.items():
        (folder / name).write_bytes(content)
    save_lora(folder / "corpus_flux.safetensors", flux, {})
    save_lora(folder / "corpus_meta_not_json.safetensors", lora_tensors(sd15, "sd15", seed=25),
              {"lookdev.trigger_words": "[inky, 'film grain'", "ss_tag_frequency": "{oops"})
    for name, tensors in _spoilt_adapters(sd15).items():
        write_safetensors(folder / name, tensors)


def _spoilt_adapters(sd15):
    """LyCORIS files that do not fit the model, or hold values ComfyUI fails or renders black on."""
    loha = adapter_tensors(sd15, "loha", seed=26)
    layer = sorted(loha)[0].rsplit(".", 1)[0]
    misfit = {**loha, f"{layer}.hada_w2_b": torch.cat([loha[f"{layer}.hada_w2_b"]] * 2, dim=1)}
    rank0 = {k: v[:0] if k.endswith("lora_down.weight") else v[:, :0] if k.endswith("lora_up.weight") else v
             for k, v in adapter_tensors(sd15, "lora", seed=27).items()}
    alpha = {**loha, f"{layer}.alpha": torch.tensor([4.0, 4.0])}
    inf = {**loha, f"{layer}.hada_w1_a": loha[f"{layer}.hada_w1_a"].clone().fill_(math.inf)}
    return {"corpus_loha_misfit.safetensors": misfit, "corpus_rank0.safetensors": rank0,
            "corpus_alpha_pair.safetensors": alpha, "corpus_inf.safetensors": inf}


LORA_CASES = [
    Case("truncated", "corpus_truncated.safetensors", "error",
         ("corpus_truncated.safetensors: is truncated: its header describes",
          "the download or copy did not finish, get the file again")),
    Case("header cut", "corpus_header_cut.safetensors", "error",
         ("corpus_header_cut.safetensors: is truncated: its header alone should be",)),
    Case("pickle renamed .safetensors", "corpus_pickle.safetensors", "error",
         ("corpus_pickle.safetensors: is a PyTorch pickle checkpoint (.pt/.ckpt) with a .safetensors name. "
          "Pickle files are never loaded",)),
    Case("pickle .pt", "corpus_pickle.pt", "error",
         ("corpus_pickle.pt: is not a .safetensors file. LookDev never loads pickle",)),
    Case("header not JSON", "corpus_header_not_json.safetensors", "error",
         ("corpus_header_not_json.safetensors: has a corrupt header (", "); get the file again")),
    Case("wrong architecture", "corpus_flux.safetensors", "error",
         ("LoRA corpus_flux.safetensors: none of its 4 keys match this SD1.x model. The LoRA looks made for Flux "
          "(double_blocks keys", "use it with Flux models")),
    Case("LoHa layer that does not fit", "corpus_loha_misfit.safetensors", "ok",
         ("corpus_loha_misfit.safetensors: 415 of 420 keys matched",
          "warning: 5 keys have shapes that do not fit the model and were skipped (e.g. diffusion_model.",
          "LoHa: its two Hadamard factors differ")),
    Case("rank 0", "corpus_rank0.safetensors", "error",
         ("LoRA corpus_rank0.safetensors: none of its", "LoRA: lora_down has rank 0; a rank is at least 1")),
    Case("alpha of two values", "corpus_alpha_pair.safetensors", "error",
         ("LoRA corpus_alpha_pair.safetensors: lora_unet_", ".alpha holds 2 values (shape (2,)); an alpha is one "
          "number per layer")),
    Case("inf values", "corpus_inf.safetensors", "error",
         ("LoRA corpus_inf.safetensors: lora_unet_", ".hada_w1_a holds ", " NaN or infinite values of ",
          "the LoRA would render black or noise")),
    Case("metadata values not JSON", "corpus_meta_not_json.safetensors", "ok",
         ("corpus_meta_not_json.safetensors: ", "keys matched",
          "warning: metadata lookdev.trigger_words is not a JSON list of words; no trigger words read from it",
          "warning: metadata ss_tag_frequency is not a JSON object of tag counts; no trigger words read from it")),
]


def lora_prompt(name, label, via):
    prompt = {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}}}
    if via == "apply":
        prompt["2"] = {"class_type": "LookDevApplyLoRA", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "lora_name": name, "strength_model": 1.0, "strength_clip": 1.0,
            "block_preset": "all", "block_weights": ""}}
    else:
        rows = {}
        for row in range(1, 5):
            rows.update({f"on_{row}": row == 1, f"lora_{row}": name if row == 1 else "None",
                         f"strength_model_{row}": 1.0, f"strength_clip_{row}": 1.0})
        prompt["s"] = {"class_type": "LookDevLoRAStack", "inputs": rows}
        prompt["2"] = {"class_type": "LookDevApplyLoRAStack", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "lora_stack": ["s", 0]}}
    prompt["3"] = {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 3], "label": label}}
    prompt["4"] = {"class_type": "LookDevTest_Capture", "inputs": {"value": ["2", 2], "label": f"{label}.words"}}
    return prompt


@pytest.mark.parametrize("via", ["apply", "stack"])
@pytest.mark.parametrize("case", LORA_CASES, ids=ids(LORA_CASES))
def test_lora_files(comfy, corpus_loras, still_works, case, via):
    label = f"corpus-lora-{case.name}-{via}"
    result = comfy.run(lora_prompt(case.make, label, via), expect_error=case.expect == "error")
    text = assert_outcome(case, result, comfy.captured.get(label))
    if case.expect == "error" and via == "stack":
        assert text.startswith(f"lora_stack entry 1 ({case.make}): ")
    if case.expect == "ok":
        assert comfy.captured[f"{label}.words"] == ""
    comfy.run(lora_prompt(GOOD_LORA, f"{label}.good", via))
    assert comfy.captured[f"{label}.good.words"] == "inky"
    still_works()


# --- training -----------------------------------------------------------------------------------


def train_prompt(folder, name, **settings):
    inputs = {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "dataset": ["2", 0], "name": name,
              "steps": 2, "learning_rate": 1e-3, "rank": 2, "alpha": 2.0, "batch_size": 1,
              "targets": "attention", "seed": 3, "resume": False, **settings}
    return {"1": {"class_type": "LookDevTest_TinyModels", "inputs": {"arch": "sd15"}},
            "2": loader(folder, trigger="inky"),
            "3": {"class_type": "LookDevTrainStyleLoRA", "inputs": inputs},
            "4": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["3", 2], "label": f"{name}.path"}}}


@pytest.fixture(scope="module")
def one_image(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus_one")
    write_image(folder / "only.png", (96, 96), seed=31)
    (folder / "only.txt").write_text("a harbor, fog", encoding="utf-8")
    return folder


def trained_report(result):
    return "\n".join(text for ui in result.ui.values() for text in ui.get("text", []))


@pytest.fixture(scope="module")
def good_lora(comfy, one_image):
    """One short run that is three corpus rows at once: steps=1, a dataset of one image, and a
    batch larger than the dataset. Returns (the run, the saved LoRA file's path)."""
    result = comfy.run(train_prompt(one_image, "corpus_keep", steps=1, batch_size=8), expect_error=True)
    return result, Path(comfy.captured.get("corpus_keep.path", ""))


TRAIN_CASES = [
    Case("steps=1", None, "ok", ("steps 0 -> 1 in ",)),
    Case("dataset of 1 image", None, "ok", ("images 1, buckets {(128, 128): 1}",)),
    Case("batch larger than the dataset", None, "ok",
         ("note: batch_size 8 is more than the dataset's 1 image per epoch, so each batch holds at most 1",)),
]


@pytest.mark.parametrize("case", TRAIN_CASES, ids=ids(TRAIN_CASES))
def test_training_edge_cases(comfy, good_lora, still_works, case):
    result, path = good_lora
    assert_outcome(case, result, trained_report(result))
    lora = read_lora(path)
    assert lora.tensors and all(torch.isfinite(t).all() for t in lora.tensors.values())
    still_works()


def test_diverging_training_stops_and_keeps_the_good_lora(comfy, one_image, good_lora, still_works):
    path = good_lora[1]
    good = path.read_bytes()
    # Lion moves every weight by the whole learning rate each step, and alpha / rank = 1024 scales
    # the update: at 0.5 the second step's activations overflow fp16.
    result = comfy.run(train_prompt(one_image, "corpus_keep", steps=20, learning_rate=0.5, optimizer="Lion",
                                    dtype="fp16", rank=1, alpha=1024.0, schedule="constant"), expect_error=True)
    case = Case("diverging learning rate", None, "error",
                ("training diverged: the ", "at step 2 (learning rate 0.5). Lower the learning rate (e.g. to 0.12), "
                 "or train in fp32; no checkpoint was written yet."))
    assert_outcome(case, result)
    assert path.read_bytes() == good
    still_works()


# --- shot lists ---------------------------------------------------------------------------------


def named_pipe(input_dir):
    pipe = input_dir / "corpus_shots_pipe.csv"
    if not pipe.exists():
        os.mkfifo(pipe)
    return {"shots_file": pipe.name}


SHOT_CASES = [  # `make(input folder)` gives the Shot List's inputs
    Case("empty shot list", lambda input_dir: {"shots": "   \n# only a comment\n"}, "error",
         ("shots has 1 problem", "there are no shots; write one shot per line: ID | description | seed | aspect",)),
    Case("malformed lines", lambda input_dir: {"shots": "A | fine\nB | x | soon\nC | a | 1 | 1:1 | neg | 2 | n | extra\n"
                                                        "D |  | 4\n"}, "error",
         ("shots has 3 problems", "line 2: seed 'soon' is not a whole number from 0 to",
          "line 3: too many fields (8); write at most ID | description | seed | aspect | negative | duration | notes",
          "line 4: the description is empty")),
    Case("bad durations", lambda input_dir: {"shots": "A | x | | | | 0\nB | x | | | | later\nC | x | | | | 900\n"},
         "error",
         ("shots has 3 problems", "line 1: duration '0' must be more than 0 seconds",
          "line 2: duration 'later' is not a number of seconds (write e.g. 3, 2.5, 2.5s or 1:30)",
          "line 3: duration '900' is longer than 10 minutes (900 s); a shot that long is likely a typo")),
    Case("duplicate shot ids", lambda input_dir: {"shots": "SH010 | dawn\nSH020 | noon\nsh010 | dusk\n"}, "error",
         ("line 3: shot id 'sh010' is already used on line 1; frames are saved by shot id",)),
    Case("unknown aspect", lambda input_dir: {"shots": "SH010 | dawn | 1 | 2.35\n"}, "error",
         ("line 1: unknown aspect '2.35'; use one of 1:1,",)),
    Case("shot id that is no file name", lambda input_dir: {"shots": "../SH010 | dawn\n"}, "error",
         ("line 1: shot id '../SH010' can't be a file name",)),
    Case("shots_file that is a named pipe", named_pipe, "error",
         ("shots_file 'corpus_shots_pipe.csv' is not a regular file (a named pipe, socket or device)",)),
]


def shots_prompt(label, **inputs):
    return {"s": {"class_type": "LookDevShotList", "inputs": {
                "shots": "", "style_prefix": "", "style_suffix": "", "trigger_words": "",
                "seed_policy": "per-shot seeds", "base_seed": 0, **inputs}},
            "c": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["s", 1], "label": label}}}


@pytest.mark.parametrize("case", SHOT_CASES, ids=ids(SHOT_CASES))
def test_shot_lists(comfy, still_works, case):
    result = comfy.run(shots_prompt("corpus-shots", **case.make(comfy.input_dir)), expect_error=True)
    assert result.error["node_type"] == "LookDevShotList"
    assert_outcome(case, result)
    still_works()


# --- the server subset --------------------------------------------------------------------------


def preview(ref):
    return {"class_type": "PreviewAny", "inputs": {"source": ref}}


def server_dataset(folder, trigger="lkdv"):
    return {"1": loader(folder, trigger=trigger), "2": preview(["1", 3])}


def server_lora(checkpoint, lora_name):
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
            "2": {"class_type": "LookDevApplyLoRA", "inputs": {
                "model": ["1", 0], "clip": ["1", 1], "lora_name": lora_name, "strength_model": 1.0,
                "strength_clip": 1.0, "block_preset": "all", "block_weights": ""}},
            "3": preview(["2", 3])}


def server_shots(text):
    return {"1": shots_prompt("", shots=text)["s"], "2": preview(["1", 1])}


def bad_files_only(folder):
    files({"a.png": b"", "b.jpg": jpeg_bytes()[:1500], "c.png": b"INT. HARBOR - DAWN\n"})(folder)
    return str(folder)


def pickle_lora(server):
    buffer = io.BytesIO()
    torch.save({"x.lora_up.weight": torch.zeros(2, 2)}, buffer)
    (server.base / "models" / "loras" / "corpus_pickle.safetensors").write_bytes(buffer.getvalue())
    return "corpus_pickle.safetensors"


# (row, prompt maker(server, checkpoint, folder), expected outcome): the cases most likely to hurt a
# long-running server - memory, a pickle, files that fail to decode, a text typed wrong.
SERVER_CASES = [
    (Case("only undecodable images", None, "error", ("3 files, none usable: 2 corrupt, 1 unsupported type",)),
     lambda server, ckpt, folder: server_dataset(bad_files_only(folder))),
    (Case("12000x8000 image", None, "ok", ("2 images",), ("Skipped",)),
     lambda server, ckpt, folder: server_dataset(with_good(call(flat_png, "scan.png", *HUGE))(folder))),
    (Case("pickle renamed .safetensors", None, "error", ("corpus_pickle.safetensors: is a PyTorch pickle checkpoint",)),
     lambda server, ckpt, folder: server_lora(ckpt, pickle_lora(server))),
    (Case("malformed shot list", None, "error", ("line 2: seed 'soon' is not a whole number",)),
     lambda server, ckpt, folder: server_shots("A | dawn\nB | noon | soon\n")),
]


def outcome_on_server(server, prompt):
    """(succeeded, the error message or the report text) of a prompt run by the server."""
    entry = server.wait(server.queue(prompt))
    if entry["status"]["status_str"] == "error":
        errors = [data for event, data in entry["status"]["messages"] if event == "execution_error"]
        return False, errors[0]["exception_message"]
    texts = [text for output in entry["outputs"].values() for text in output.get("text", [])]
    return True, "\n".join(texts)


@pytest.mark.server
@pytest.mark.parametrize("case, make", SERVER_CASES, ids=[case.name for case, _ in SERVER_CASES])
def test_server_survives_the_corpus(server, tiny_checkpoint, good_folder, tmp_path, case, make):
    folder = tmp_path / "refs"
    folder.mkdir()
    succeeded, text = outcome_on_server(server, make(server, tiny_checkpoint, folder))
    assert succeeded == (case.expect == "ok"), text
    assert "Traceback" not in text
    for words in case.words:
        assert words in text, f"{case.name}: {words!r} not in:\n{text}"
    for words in case.absent:
        assert words not in text, f"{case.name}: {words!r} in:\n{text}"
    assert "LookDevLoadDataset" in server.get("/object_info").json()
    trigger = f"good-{uuid.uuid4().hex[:8]}"
    succeeded, report = outcome_on_server(server, server_dataset(good_folder, trigger))
    assert succeeded and f"Trigger: '{trigger}'" in report
