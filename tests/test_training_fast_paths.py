"""The trainer's fast paths compute what the paths they replace compute: the plain-LoRA hook
against peft's own forward, and gradient checkpointing against none."""

import pytest
import torch
from torch import nn

from lookdev.trainer.training.adapters import AdapterSet, AdapterSpec, _peft_hook, _plain_lora_hook

LAYERS = {
    "linear": lambda: nn.Linear(12, 10),
    "conv3x3": lambda: nn.Conv2d(6, 8, 3, padding=1),
    "conv strided": lambda: nn.Conv2d(6, 8, 3, stride=2, padding=1),
    "conv1x1": lambda: nn.Conv2d(6, 8, 1),
}


def _input(kind, dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    shape = (2, 5, 12) if kind == "linear" else (2, 6, 9, 9)
    return torch.randn(shape, generator=gen).to(dtype)


def _adapted(kind, dropout=0.0):
    torch.manual_seed(0)
    layer = LAYERS[kind]().requires_grad_(False)
    adapters = AdapterSet({"layer": layer}, AdapterSpec("lora", rank=4, alpha=2.0, dropout=dropout), seed=0)
    with torch.no_grad():
        for param in adapters.trainable_parameters():  # B starts at zero: give the update a value
            param.normal_(generator=torch.Generator().manual_seed(param.numel()))
    return layer, adapters.wrapper("layer")


def _both(layer, wrapper, x, seed=None):
    out = {}
    for name, hook in (("plain", _plain_lora_hook(wrapper)), ("peft", _peft_hook(wrapper))):
        if seed is not None:
            torch.manual_seed(seed)
        out[name] = hook(layer, (x,), layer(x))
    return out["plain"], out["peft"]


@pytest.mark.parametrize("kind", list(LAYERS))
def test_plain_lora_hook_matches_peft_fp32(kind):
    layer, wrapper = _adapted(kind)
    plain, reference = _both(layer, wrapper, _input(kind))
    assert plain.dtype == reference.dtype == torch.float32
    assert not torch.allclose(reference, layer(_input(kind)))  # the update is not zero
    torch.testing.assert_close(plain, reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_plain_lora_hook_draws_the_same_dropout(kind):
    layer, wrapper = _adapted(kind, dropout=0.3)
    wrapper.train()
    plain, reference = _both(layer, wrapper, _input(kind), seed=11)
    torch.testing.assert_close(plain, reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["linear", "conv3x3"])
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_plain_lora_hook_matches_peft_under_autocast(kind, input_dtype):
    layer, wrapper = _adapted(kind)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain, reference = _both(layer, wrapper, _input(kind, input_dtype))
    assert plain.dtype == reference.dtype == torch.bfloat16
    # The plain hook computes the update in fp32 on CPU, peft in bf16: they agree to bf16 rounding.
    tolerance = 2 ** -7 * reference.abs().max().item()
    torch.testing.assert_close(plain.float(), reference.float(), rtol=0, atol=tolerance)


def test_plain_lora_hook_casts_a_low_precision_input_like_peft():
    layer, wrapper = _adapted("linear")
    layer.to(torch.bfloat16)
    plain, reference = _both(layer, wrapper, _input("linear", torch.bfloat16))
    assert plain.dtype == reference.dtype == torch.bfloat16
    torch.testing.assert_close(plain.float(), reference.float(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("algorithm", ["dora", "loha", "lokr"])
def test_other_algorithms_keep_peft_forward(algorithm):
    layer = nn.Linear(12, 10)
    adapters = AdapterSet({"layer": layer}, AdapterSpec(algorithm, rank=4, alpha=4.0), seed=0)
    assert _plain_lora_hook(adapters.wrapper("layer")) is None


# --- gradient checkpointing, on tiny models in ComfyUI -------------------------------------------

CHECKPOINT_CASES = {
    # arch: (latent channels, adapter layers, modules whose calls are counted: layers inside the
    # checkpointed blocks, since a block's own recomputation calls its forward, not its hooks)
    "sd15": (4, ["input_blocks.1.1.transformer_blocks.0.attn1.to_q", "output_blocks.2.1.transformer_blocks.0.ff.net.2",
                 "input_blocks.1.0.in_layers.2"],
             ["input_blocks.1.0.in_layers", "input_blocks.1.1.transformer_blocks.0", "middle_block.0.in_layers",
              "output_blocks.2.0.out_layers"]),
    "sd3": (16, ["joint_blocks.1.x_block.attn.qkv", "joint_blocks.0.x_block.mlp.fc2"],
            ["joint_blocks.0.x_block.mlp", "joint_blocks.1.x_block.norm2"]),
    # Flux: blocks that add to their input in place (each checkpointed block runs on copies)
    "flux_dev": (16, ["double_blocks.0.img_attn.qkv", "single_blocks.1.linear2"],
                 ["double_blocks.0.img_mlp.0", "double_blocks.1.txt_attn.proj", "single_blocks.1.linear1"]),
}


def _step_grads(comfy, arch, checkpointing):
    """Adapter gradients of one denoising loss, and how often each counted module ran."""
    from lookdev.trainer import comfy_bridge as bridge

    channels, adapted, counted = CHECKPOINT_CASES[arch]
    bundle = comfy.tiny_bundle(arch)
    modules = dict(bridge.named_layers(bundle.model))
    calls = {path: 0 for path in counted}

    def counter(path):
        def count(module, args):
            calls[path] += 1
        return count

    with bridge.training_session(bundle.model, bundle.clip, torch.float32, checkpointing) as den:
        adapters = AdapterSet({f"l{i}": modules[path] for i, path in enumerate(adapted)}, AdapterSpec(rank=4), seed=0)
        with torch.no_grad():
            for param in adapters.trainable_parameters():
                param.normal_(generator=torch.Generator().manual_seed(param.numel()), std=0.1)
        cond = den.encode_captions(["a pier at night"])["a pier at night"]
        x = torch.randn(1, channels, 16, 16, generator=torch.Generator().manual_seed(3))
        handles = [modules[path].register_forward_pre_hook(counter(path)) for path in counted]
        try:
            with adapters.attach():
                den.denoise(x, den.sigmas(torch.tensor([0.6])), [cond]).square().mean().backward()
        finally:
            for handle in handles:
                handle.remove()
        return [p.grad.clone() for p in adapters.trainable_parameters()], calls


@pytest.mark.parametrize("arch", list(CHECKPOINT_CASES))
def test_gradient_checkpointing_gives_the_same_gradients_recomputing_each_block_once(comfy, arch):
    plain, plain_calls = _step_grads(comfy, arch, False)
    checkpointed, checkpointed_calls = _step_grads(comfy, arch, True)
    assert set(plain_calls.values()) == {1}
    # Each block (UNet ResBlocks and transformers included) runs once more in backward: once,
    # not once per nesting level.
    assert checkpointed_calls == {path: 2 for path in plain_calls}
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
