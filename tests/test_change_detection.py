"""Change detection by content: Load Dataset re-runs when an image's bytes change even if its
size and modification time do not, and the latent cache's VAE fingerprint covers every weight."""

import copy
import importlib
import os

import numpy as np
import torch
from PIL import Image

from dataset_prompts import cached_nodes, loader
from lookdev.trainer import comfy_bridge


def _bmp(path, seed):
    """An uncompressed image: its file size depends on its dimensions only."""
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="BMP")


def test_load_dataset_reruns_when_an_image_changes_keeping_size_and_mtime(comfy, tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    _bmp(folder / "a.bmp", seed=1)
    _bmp(folder / "b.bmp", seed=2)
    prompt = {"1": loader(folder),
              "c": {"class_type": "LookDevTest_Capture", "inputs": {"value": ["1", 0], "label": "mtime.dataset"}}}
    comfy.run(copy.deepcopy(prompt))
    before = [sample.content_hash for sample in comfy.captured["mtime.dataset"].samples]
    assert "1" in cached_nodes(comfy.run(copy.deepcopy(prompt)))

    st = (folder / "a.bmp").stat()
    _bmp(folder / "a.bmp", seed=3)  # retouched and saved over the old file ...
    os.utime(folder / "a.bmp", ns=(st.st_atime_ns, st.st_mtime_ns))  # ... by a tool that keeps the mtime
    assert (folder / "a.bmp").stat().st_size == st.st_size
    assert "1" not in cached_nodes(comfy.run(copy.deepcopy(prompt)))
    after = [sample.content_hash for sample in comfy.captured["mtime.dataset"].samples]
    assert after != before and len(set(after) & set(before)) == 1  # b.bmp's sample is unchanged
    assert "1" in cached_nodes(comfy.run(copy.deepcopy(prompt)))


def test_vae_fingerprint_covers_every_weight_and_is_kept_per_loaded_vae(comfy):
    from tiny_models import vae_ddconfig

    comfy_sd = importlib.import_module("comfy.sd")

    vae = comfy.tiny_bundle("sd15").vae
    params = {"embed_dim": 4, "ddconfig": vae_ddconfig(4, 32, 1)}
    weights = {k: v.clone() for k, v in vae.first_stage_model.state_dict().items()}
    name = max(weights, key=lambda k: weights[k].numel())
    weights[name].view(-1)[1] += 1e-3  # one value between the 512 the old fingerprint sampled
    changed = comfy_sd.VAE(sd=weights, config={"params": params}, dtype=torch.float32)
    changed.latent_channels = 4
    original = comfy_bridge.vae_identity(vae)
    assert comfy_bridge.vae_identity(changed) != original
    weights[name].view(-1)[1] -= 1e-3
    same = comfy_sd.VAE(sd=weights, config={"params": params}, dtype=torch.float32)
    same.latent_channels = 4
    assert comfy_bridge.vae_identity(same) == original

    # Kept per loaded VAE: asking again does not read the weights again.
    def refuse(*args, **kwargs):
        raise AssertionError("the VAE's weights were hashed again")

    state_dict, same.first_stage_model.state_dict = same.first_stage_model.state_dict, refuse
    try:
        assert comfy_bridge.vae_identity(same) == original
    finally:
        same.first_stage_model.state_dict = state_dict
