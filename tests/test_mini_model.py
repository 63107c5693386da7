"""LookDev Mini (scripts/mini_model.py): the narrow networks it trains compute exactly what the
full-width SD1.5 networks of the assembled checkpoint compute, and what ships is small and says
what it is."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import mini_scenes
from comfy_server import comfyui_path

SHIPPED_LIMIT_BYTES = 30 * 1024 * 1024
PRETRAIN = Path(__file__).resolve().parents[1] / "scripts" / "pretrain_mini.py"


@pytest.fixture(scope="module")
def mini(comfy):
    import mini_model

    return mini_model


def _perturb_(module, seed):
    """Random weights and non-zero biases and norms everywhere, so no channel hides a mismatch."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            scale = 0.1 if param.ndim == 1 else param[0].numel() ** -0.5
            param.copy_(torch.randn(param.shape, generator=gen) * scale)
    return module


def test_narrow_unet_equals_the_full_width_unet_it_is_embedded_in(mini):
    narrow = _perturb_(mini.narrow_unet(), 1)
    full = mini.full_unet(narrow.state_dict()).diffusion_model
    assert full.model_channels == 320
    x = torch.randn(2, 4, 12, 16, generator=torch.Generator().manual_seed(2))
    context = torch.randn(2, 77, 768, generator=torch.Generator().manual_seed(3))
    t = torch.tensor([15.0, 820.0])
    with torch.no_grad():
        a, b = narrow(x, t, context=context), full(x, t, context=context)
    assert a.abs().mean() > 0.05
    assert torch.allclose(a, b, atol=2e-5), (a - b).abs().max()


def test_narrow_vae_equals_the_full_width_vae(mini):
    from comfy.ldm.models.autoencoder import AutoencoderKL

    narrow = _perturb_(mini.narrow_vae(), 4)
    full = AutoencoderKL(ddconfig=dict(mini.VAE_DDCONFIG), embed_dim=4)
    full.load_state_dict(mini.full_vae_sd(narrow.state_dict()))
    image = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        za, zb = narrow.encode(image), full.encode(image)
        za, zb = (za[0] if isinstance(za, tuple) else za), (zb[0] if isinstance(zb, tuple) else zb)
        assert torch.allclose(za, zb, atol=1e-5)
        assert torch.allclose(narrow.decode(za), full.decode(za), atol=1e-5)


def test_structured_vae_latent_is_the_block_mean_colour(mini):
    vae = mini.structured_vae()
    image = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        z = vae.encode(image)
        z = z[0] if isinstance(z, tuple) else z
        blocks = torch.nn.functional.avg_pool2d(image, 8)
        assert torch.allclose(z[:, :3], blocks, atol=1e-3) and z[:, 3].abs().max() == 0
        mosaic = blocks.repeat_interleave(8, 2).repeat_interleave(8, 3)
        assert torch.allclose(vae.decode(z), mosaic, atol=2e-3)


def test_shipped_weights_are_small_and_describe_themselves(mini):
    assert mini.SHIPPED.stat().st_size < SHIPPED_LIMIT_BYTES
    with safe_open(str(mini.SHIPPED), framework="pt") as handle:
        metadata = handle.metadata()
        dtypes = {handle.get_slice(key).get_dtype() for key in handle.keys()}
    assert dtypes == {"F16"}
    assert metadata["lookdev.version"] == mini.VERSION
    settings = json.loads(metadata["lookdev.settings"])
    recipe = json.loads(metadata["lookdev.data_recipe"])
    assert settings["seed"] == 0 and settings["unet_steps"] > 0
    assert recipe["generator"] == "scripts/mini_scenes.py" and recipe["train_seeds"][1] > recipe["train_seeds"][0]
    # A changed scene recipe needs the model pretrained again (and every figure measured on it).
    assert recipe["recipe_version"] == mini_scenes.RECIPE_VERSION
    assert float(metadata["lookdev.vae_psnr_db"]) > 18
    assert int(metadata["lookdev.pretrain_seconds"]) > 0


@pytest.mark.slow
def test_pretraining_smoke_run_writes_a_model_and_a_second_run_resumes_to_the_same_weights(tmp_path):
    """scripts/pretrain_mini.py end to end on a few scenes (--smoke), run twice: the second run
    finds the first one's checkpoints and writes the same weights without training again."""
    env = {**os.environ, "COMFYUI_PATH": str(comfyui_path())}
    outputs = []
    for run in (1, 2):
        out = tmp_path / f"run{run}.safetensors"
        done = subprocess.run([sys.executable, str(PRETRAIN), "--smoke", "--work", str(tmp_path / "work"),
                               "--out", str(out), "--save-every", "2"],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        outputs.append(out)
    log = (tmp_path / "work" / "log.txt").read_text()
    assert "unet: EMA weights of step 4 from its checkpoint" in log
    assert (tmp_path / "work" / "preview.png").exists()
    first, second = load_file(str(outputs[0])), load_file(str(outputs[1]))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    with safe_open(str(outputs[0]), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["lookdev.pretrain_device"] == "cpu" and metadata["lookdev.unet_steps_done"] == "4"


def test_pretraining_on_a_missing_gpu_is_refused_before_any_work(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    done = subprocess.run([sys.executable, str(PRETRAIN), "--device", "cuda", "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
    assert not (tmp_path / "work").exists()
