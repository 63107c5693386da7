"""Reading and writing LoRA .safetensors files, with errors that name the file and the fix.

safetensors checks the header against the file; when it refuses one, the file is looked at here
so a truncated download, a renamed pickle checkpoint or a hand-edited header gets a plain
explanation instead of a Rust error.
Pickle files (.pt/.ckpt) are never loaded: they can run code when read.

`save_lora` adds two hash fields, both the sha256 of the tensor data (the file after the
header): `sshs_model_hash` (hex, what kohya writes and A1111 shows as the LoRA's hash) and
`modelspec.hash_sha256` ("0x" + hex, the ModelSpec reference definition). kohya's
`sshs_legacy_hash` depends on the header bytes and is not written.
"""

import hashlib
import json
import math
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from safetensors import SafetensorError

from ..fileio import write_safetensors

SAVE_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
# Header dtype names LoRA readers handle (ComfyUI, A1111, kohya).
_READABLE_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


class LoraFileError(ValueError):
    """A LoRA file cannot be read; the message names the file and what to do."""

    def __init__(self, path, problem):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class LoraFile:
    """A read LoRA: {name: CPU tensor}, {str: str} metadata, and the path it came from."""

    tensors: dict
    metadata: dict
    path: Path


def _data_sha256(serialized: bytes) -> str:
    (header_len,) = struct.unpack("<Q", serialized[:8])
    return hashlib.sha256(memoryview(serialized)[8 + header_len:]).hexdigest()


def _prepare_tensors(tensors, save_dtype):
    if not tensors:
        raise ValueError("a LoRA needs at least one tensor; got none")
    out = {}
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise ValueError(f"LoRA tensors must map str names to torch tensors; got {name!r}: {type(tensor).__name__}")
        if not tensor.is_floating_point():
            raise ValueError(f"LoRA tensor {name!r} has dtype {tensor.dtype}; LoRA tensors are floating point")
        # alpha is a scalar the readers use as-is: keep it exact rather than round it to fp16/bf16.
        dtype = torch.float32 if name.endswith(".alpha") else save_dtype
        out[name] = tensor.detach().to(device="cpu", dtype=dtype, copy=True).contiguous()
    return out


def _check_metadata(metadata):
    bad = [(k, v) for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        key, value = bad[0]
        raise ValueError(f"safetensors metadata must be str -> str; {key!r} has a value of type "
                         f"{type(value).__name__} (convert it with str() or json.dumps())")


def save_lora(path, tensors: dict, metadata: dict, dtype: str = "fp16") -> Path:
    """Write a LoRA atomically: tensors on CPU, contiguous, in `dtype` (a SAVE_DTYPES key;
    `.alpha` scalars stay float32), metadata plus the two hash fields. Returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        # Readers pick the loader from the extension: any other name would go to torch.load.
        raise ValueError(f"{path}: LoRA files must be named *.safetensors")
    if dtype not in SAVE_DTYPES:
        raise ValueError(f"save dtype {dtype!r} is not one of {list(SAVE_DTYPES)}")
    _check_metadata(metadata)
    prepared = _prepare_tensors(tensors, SAVE_DTYPES[dtype])
    # The data section does not depend on the metadata, so hash a metadata-free serialization.
    digest = _data_sha256(safetensors.torch.save(prepared))
    full = {**metadata, "sshs_model_hash": digest, "modelspec.hash_sha256": "0x" + digest}
    write_safetensors(path, prepared, metadata=full)
    return path


def _stat(path):
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LoraFileError(path, "file not found; check the name and folder") from None
    except OSError as exc:
        raise LoraFileError(path, f"cannot be read ({exc.strerror})") from exc
    if path.is_dir():
        raise LoraFileError(path, "is a folder, not a LoRA file; pick the .safetensors file inside it")
    if st.st_size == 0:
        raise LoraFileError(path, "is empty (0 bytes): the download or copy did not finish; get the file again")
    return st


def _pickle_error(path):
    return LoraFileError(path, "is a PyTorch pickle checkpoint (.pt/.ckpt) with a .safetensors name. "
                               "Pickle files are never loaded because they can run code when read; "
                               "get the .safetensors version or convert it with a tool you trust")


def _dtype_error(path, name, dtype):
    return LoraFileError(path, f"tensor {name!r} has dtype {dtype}; LoRA tensors must be one of "
                               f"{', '.join(_READABLE_DTYPES)}. Re-save the LoRA in fp16, bf16 or fp32")


def _peek(path):
    """(first 8 bytes, header length, parsed header or None, why it does not parse) of a file
    safetensors refused: enough to say in plain words what is wrong with it."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        header_len = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        raw = fh.read(header_len) if 0 < header_len <= _MAX_HEADER_BYTES else b""
    try:
        return head, header_len, json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return head, header_len, None, str(exc)


def _explain(path, size, error):
    """A LoraFileError for a file safetensors refused (its own check), in plain words."""
    kind = str(error).lower().replace("_", "").replace(" ", "")  # both its Debug and Display spellings
    head, header_len, header, json_error = _peek(path)
    if "toosmall" in kind:
        return LoraFileError(path, f"is only {size} bytes, too short for a safetensors file; get the file again")
    if header is None and head.startswith(_PICKLE_MAGIC):  # a header length can begin like a pickle
        return _pickle_error(path)
    if "headerlength" in kind:
        return LoraFileError(path, f"is truncated: its header alone should be {header_len} bytes but the file has "
                                   f"{size}; the download or copy did not finish, get the file again")
    if not isinstance(header, dict):
        if json_error and "toolarge" not in kind and "headerstart" not in kind:
            return LoraFileError(path, f"has a corrupt header ({json_error}); get the file again")
        return LoraFileError(path, "is not a safetensors file (no valid header); get the file again")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        return LoraFileError(path, "has metadata that is not text -> text, which safetensors readers refuse; "
                                   "re-save it with a tool that writes string metadata")
    entries = {name: e for name, e in header.items() if isinstance(e, dict)}
    if len(entries) < len(header) or any(len(e.get("data_offsets") or ()) != 2 for e in entries.values()):
        name = next(n for n in header if n not in entries or len(header[n].get("data_offsets") or ()) != 2)
        return LoraFileError(path, f"has a corrupt header entry for {name!r}; get the file again")
    for name, entry in entries.items():
        if entry.get("dtype") not in _READABLE_DTYPES:
            return _dtype_error(path, name, entry.get("dtype"))
    if "incomplete" in kind:
        described = sum(math.prod(e.get("shape") or ()) * _READABLE_DTYPES[e["dtype"]] for e in entries.values())
        data_len = size - 8 - header_len
        if described > data_len:
            return LoraFileError(path, f"is truncated: its header describes {described} bytes of tensor data but "
                                       f"only {data_len} are there; the download or copy did not finish, get the "
                                       "file again")
        return LoraFileError(path, f"has {data_len - described} unexpected bytes after its tensor data; "
                                   "the file is damaged, get it again")
    if "offset" in kind and "shape" not in kind and "invalidinfo" not in kind:
        return LoraFileError(path, "has a corrupt header: tensors overlap or leave gaps; get the file again")
    if "shape" in kind or "invalidinfo" in kind:
        return LoraFileError(path, "has a corrupt header: the size of a tensor does not match its shape")
    return LoraFileError(path, f"is damaged ({error}); get the file again")


def _read_header(path) -> dict:
    """Let safetensors check the whole header against the file; return its metadata."""
    size = _stat(path).st_size
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            dtypes = {name: handle.get_slice(name).get_dtype() for name in handle.keys()}
    except SafetensorError as exc:
        raise _explain(path, size, exc) from None
    except OSError as exc:
        raise LoraFileError(path, f"cannot be read ({exc.strerror})") from exc
    if not dtypes:
        raise LoraFileError(path, "holds no tensors, so it is not a LoRA; get the file again")
    for name, dtype in dtypes.items():
        if dtype not in _READABLE_DTYPES:
            raise _dtype_error(path, name, dtype)
    return metadata


def read_metadata(path) -> dict:
    """The file's metadata (str -> str), reading only the header."""
    return _read_header(path)


def read_lora(path) -> LoraFile:
    """All tensors (on CPU) and the metadata of a LoRA file."""
    path = Path(path)
    metadata = _read_header(path)
    try:
        tensors = safetensors.torch.load_file(str(path), device="cpu")
    except SafetensorError as exc:
        raise LoraFileError(path, f"is damaged ({exc}); get the file again") from None
    except OSError as exc:
        raise LoraFileError(path, f"cannot be read ({exc.strerror})") from exc
    return LoraFile(tensors=tensors, metadata=metadata, path=path)


class LoraFileCache:
    """Bounded LRU of read LoRA files, keyed by resolved path, mtime and size, so a file that
    several nodes use in one run is read once and an edited file is read again.

    Callers get their own dicts; the tensors are shared and must be treated as read-only.
    Not functools.lru_cache: that would keep every older version of an edited file (each one a
    LoRA's worth of tensors) until it ages out; this drops a file's stale entry when it is re-read,
    and does not cache a read that raced with a rewrite.
    """

    def __init__(self, max_entries: int = 8):
        if max_entries < 1:
            raise ValueError(f"LoraFileCache max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._entries = OrderedDict()

    def __len__(self):
        return len(self._entries)

    def clear(self):
        self._entries.clear()

    @staticmethod
    def _key(path):
        st = _stat(path)
        return (os.path.realpath(path), st.st_mtime_ns, st.st_size)

    def get(self, path) -> LoraFile:
        key = self._key(path)
        lora = self._entries.get(key)
        if lora is None:
            lora = read_lora(path)
            if self._key(path) == key:  # not rewritten while we read it
                self._store(key, lora)
        else:
            self._entries.move_to_end(key)
        return replace(lora, tensors=dict(lora.tensors), metadata=dict(lora.metadata), path=Path(path))

    def _store(self, key, lora):
        for stale in [k for k in self._entries if k[0] == key[0]]:
            del self._entries[stale]
        self._entries[key] = lora
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
