import hashlib
import json
import os
import pickle
import struct

import pytest
import safetensors.torch
import torch

from lookdev.trainer.lora.io import (
    LoraFileCache,
    LoraFileError,
    read_lora,
    read_metadata,
    save_lora,
)

NAME = "lora_unet_down_blocks_0_attentions_0_proj_in"


def _tensors(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {
        f"{NAME}.lora_down.weight": torch.randn(4, 32, generator=gen),
        f"{NAME}.lora_up.weight": torch.randn(32, 4, generator=gen),
        f"{NAME}.alpha": torch.tensor(4.0),
    }


def _data_sha256(path):
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    return hashlib.sha256(raw[8 + header_len:]).hexdigest()


@pytest.mark.parametrize("dtype, torch_dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16),
                                                 ("fp32", torch.float32)])
def test_round_trip(tmp_path, dtype, torch_dtype):
    path = tmp_path / "style.safetensors"
    tensors = _tensors()
    assert save_lora(path, tensors, {"ss_network_dim": "4"}, dtype=dtype) == path
    lora = read_lora(path)
    assert lora.path == path
    assert set(lora.tensors) == set(tensors)
    for name, tensor in tensors.items():
        expected_dtype = torch.float32 if name.endswith(".alpha") else torch_dtype
        assert lora.tensors[name].dtype == expected_dtype
        assert torch.equal(lora.tensors[name], tensor.to(expected_dtype))
    assert lora.metadata["ss_network_dim"] == "4"
    assert read_metadata(path) == lora.metadata


def test_hashes_are_the_sha256_of_the_tensor_data(tmp_path):
    path = tmp_path / "style.safetensors"
    save_lora(path, _tensors(), {"ss_output_name": "style", "sshs_model_hash": "stale"})
    metadata = read_metadata(path)
    assert metadata["sshs_model_hash"] == _data_sha256(path)
    assert metadata["modelspec.hash_sha256"] == "0x" + _data_sha256(path)


def test_hash_does_not_depend_on_metadata_but_on_tensors(tmp_path):
    save_lora(tmp_path / "a.safetensors", _tensors(0), {"x": "1"})
    save_lora(tmp_path / "b.safetensors", _tensors(0), {"x": "a much longer value " * 50})
    save_lora(tmp_path / "c.safetensors", _tensors(1), {"x": "1"})
    hashes = [read_metadata(tmp_path / f"{n}.safetensors")["sshs_model_hash"] for n in "abc"]
    assert hashes[0] == hashes[1] != hashes[2]


def test_saves_views_non_contiguous_and_grad_tensors(tmp_path):
    base = torch.randn(8, 8, requires_grad=True)
    tensors = {"a.lora_down.weight": base.t(), "a.lora_up.weight": base[:4], "b.lora_up.weight": base[4:]}
    save_lora(tmp_path / "v.safetensors", tensors, {}, dtype="fp32")
    lora = read_lora(tmp_path / "v.safetensors")
    for name, tensor in tensors.items():
        assert torch.equal(lora.tensors[name], tensor.detach())


def test_overwrite_leaves_no_temp_files(tmp_path):
    path = tmp_path / "style.safetensors"
    save_lora(path, _tensors(0), {})
    save_lora(path, _tensors(1), {})
    assert [p.name for p in tmp_path.iterdir()] == ["style.safetensors"]
    assert torch.equal(read_lora(path).tensors[f"{NAME}.lora_up.weight"],
                       _tensors(1)[f"{NAME}.lora_up.weight"].half())


@pytest.mark.parametrize("name, tensors, metadata, dtype, fragment", [
    ("style.pt", _tensors(), {}, "fp16", "must be named *.safetensors"),
    ("style.safetensors", _tensors(), {}, "fp8", "save dtype 'fp8' is not one of"),
    ("style.safetensors", _tensors(), {"ss_network_dim": 4}, "fp16", "'ss_network_dim' has a value of type int"),
    ("style.safetensors", {}, {}, "fp16", "at least one tensor"),
    ("style.safetensors", {"x.alpha": torch.tensor(4)}, {}, "fp16", "'x.alpha' has dtype torch.int64"),
    ("style.safetensors", {"x.alpha": 4.0}, {}, "fp16", "got 'x.alpha': float"),
])
def test_save_errors(tmp_path, name, tensors, metadata, dtype, fragment):
    with pytest.raises(ValueError) as info:
        save_lora(tmp_path / name, tensors, metadata, dtype=dtype)
    assert fragment in str(info.value)
    assert list(tmp_path.iterdir()) == []


def _valid_bytes():
    return safetensors.torch.save(_tensors(), {"ss_output_name": "style"})


def _with_header(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _header_and_data():
    raw = _valid_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _edit_header(edit):
    header, data = _header_and_data()
    edit(header)
    return _with_header(header, data)


def _truncated_data():
    return _valid_bytes()[:-10]


def _cut_header():
    return _valid_bytes()[:20]


def _garbled_header():
    raw = bytearray(_valid_bytes())
    raw[9:15] = b"@@@@@@"
    return bytes(raw)


def _overlapping():
    def edit(header):  # two same-size tensors on the same bytes
        header[f"{NAME}.lora_up.weight"]["data_offsets"] = header[f"{NAME}.lora_down.weight"]["data_offsets"]
    return _edit_header(edit)


CORRUPT = {
    "zero bytes": (lambda: b"", "is empty (0 bytes)"),
    "five bytes": (lambda: b"\x10\x00\x00\x00\x00", "too short for a safetensors file"),
    "truncated data": (_truncated_data, "is truncated: its header describes"),
    "truncated header": (_cut_header, "is truncated: its header alone should be"),
    "garbled header": (_garbled_header, "has a corrupt header"),
    "header not json": (lambda: _with_header({}).replace(b"{}", b"{]"), "has a corrupt header"),
    "header is a list": (lambda: struct.pack("<Q", 2) + b"[]", "is not a safetensors file"),
    "header json list": (lambda: struct.pack("<Q", 4) + b"{}[]", "has a corrupt header"),
    "random bytes": (lambda: os.urandom(64).replace(b"\x80", b"\x81").replace(b"PK", b"QK"),
                     "not a safetensors file"),
    "extra bytes": (lambda: _valid_bytes() + b"\x00" * 16, "16 unexpected bytes after its tensor data"),
    "zip checkpoint": (lambda: None, "pickle checkpoint"),
    "pickle protocol 2": (lambda: pickle.dumps({"a": 1}, protocol=2), "pickle checkpoint"),
    "pickle protocol 4": (lambda: pickle.dumps({"a": [1.0] * 100}, protocol=4), "pickle checkpoint"),
    "pickle protocol 5": (lambda: pickle.dumps({"a": 1}, protocol=5), "Pickle files are never loaded"),
    "metadata not str": (lambda: _edit_header(lambda h: h.update(__metadata__={"ss_network_dim": 4})),
                         "metadata that is not text -> text"),
    "metadata not dict": (lambda: _edit_header(lambda h: h.update(__metadata__="x")),
                          "metadata that is not text -> text"),
    "int64 tensor": (lambda: safetensors.torch.save({"x.alpha": torch.arange(3)}), "has dtype I64"),
    "float8 tensor": (lambda: _edit_header(lambda h: h[f"{NAME}.alpha"].update(dtype="F8_E4M3")),
                      "has dtype F8_E4M3"),
    "shape mismatch": (lambda: _edit_header(lambda h: h[f"{NAME}.lora_up.weight"].update(shape=[32, 5])),
                       "does not match its shape"),
    "bad offsets": (lambda: _edit_header(lambda h: h[f"{NAME}.alpha"].update(data_offsets=[0])),
                    "corrupt header entry"),
    "entry not dict": (lambda: _edit_header(lambda h: h.update({f"{NAME}.alpha": 3})), "corrupt header entry"),
    "overlapping tensors": (_overlapping, "overlap or leave gaps"),
    "no tensors": (lambda: _with_header({"__metadata__": {"ss_output_name": "x"}}), "holds no tensors"),
}


def _write_case(tmp_path, case):
    path = tmp_path / "bad.safetensors"
    if case == "zip checkpoint":
        torch.save({"w": torch.zeros(2)}, path)  # a .pt/.ckpt renamed to .safetensors
    else:
        path.write_bytes(CORRUPT[case][0]())
    return path


@pytest.mark.parametrize("reader", [read_lora, read_metadata])
@pytest.mark.parametrize("case", list(CORRUPT))
def test_corrupt_files_name_the_file_and_the_problem(tmp_path, reader, case):
    path = _write_case(tmp_path, case)
    with pytest.raises(LoraFileError) as info:
        reader(path)
    assert str(info.value).startswith(f"{path}: ")
    assert CORRUPT[case][1] in str(info.value)
    assert info.value.path == path
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("reader", [read_lora, read_metadata])
def test_missing_file_and_folder(tmp_path, reader):
    with pytest.raises(LoraFileError, match="file not found"):
        reader(tmp_path / "nope.safetensors")
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    with pytest.raises(LoraFileError, match="is a folder"):
        reader(folder)


def test_header_length_that_looks_like_a_pickle_is_still_read(tmp_path):
    # A header of 0x280 bytes starts the file with b"\x80\x02", the pickle protocol-2 magic.
    header, data = _header_and_data()
    raw = json.dumps(header).encode()
    padded = raw + b" " * (0x280 - len(raw))
    path = tmp_path / "pad.safetensors"
    path.write_bytes(struct.pack("<Q", len(padded)) + padded + data)
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert set(read_lora(path).tensors) == set(_tensors())


def test_cache_reads_each_file_once(tmp_path):
    path = tmp_path / "style.safetensors"
    save_lora(path, _tensors(), {"a": "1"})
    cache = LoraFileCache(max_entries=4)
    first, second = cache.get(path), cache.get(str(path))
    name = f"{NAME}.lora_up.weight"
    assert first.tensors[name] is second.tensors[name]
    assert len(cache) == 1
    first.tensors.clear()
    first.metadata["a"] = "changed"
    third = cache.get(path)
    assert name in third.tensors and third.metadata["a"] == "1"


def test_cache_rereads_a_rewritten_file(tmp_path):
    path = tmp_path / "style.safetensors"
    save_lora(path, _tensors(0), {})
    cache = LoraFileCache()
    before = cache.get(path)
    save_lora(path, _tensors(1), {})  # same size: only the mtime tells them apart
    later = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(later, later))
    after = cache.get(path)
    name = f"{NAME}.lora_up.weight"
    assert torch.equal(after.tensors[name], _tensors(1)[name].half())
    assert len(cache) == 1


def test_cache_follows_symlinks(tmp_path):
    path = tmp_path / "style.safetensors"
    save_lora(path, _tensors(), {})
    link = tmp_path / "link.safetensors"
    link.symlink_to(path)
    cache = LoraFileCache()
    assert cache.get(path).tensors[f"{NAME}.alpha"] is cache.get(link).tensors[f"{NAME}.alpha"]
    assert len(cache) == 1


def test_cache_evicts_least_recently_used(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"l{i}.safetensors")
        save_lora(paths[-1], _tensors(i), {})
    cache = LoraFileCache(max_entries=2)
    first = cache.get(paths[0])
    cache.get(paths[1])
    cache.get(paths[0])  # paths[1] is now the least recently used
    cache.get(paths[2])
    assert len(cache) == 2
    alpha = f"{NAME}.alpha"
    assert cache.get(paths[0]).tensors[alpha] is first.tensors[alpha]
    cache.clear()
    assert len(cache) == 0
    assert cache.get(paths[0]).tensors[alpha] is not first.tensors[alpha]


def test_cache_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        LoraFileCache(max_entries=0)
    with pytest.raises(LoraFileError, match="file not found"):
        LoraFileCache().get(tmp_path / "nope.safetensors")
