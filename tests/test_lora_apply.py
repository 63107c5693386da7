"""The applier's pure parts: architecture guesses, LORA_STACK handling, options, word lists."""

import math

import pytest

from lookdev.trainer.lora.apply import ApplyOptions, LoraReport, _sorted_blocks, choose_source, unique_words
from lookdev.trainer.lora.detect import guess_architecture, is_text_encoder_key
from lookdev.trainer.lora.stack import build_stack, normalize_stack

SD1_ATTN = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2"


@pytest.mark.parametrize("shapes, arch, evidence", [
    ({f"{SD1_ATTN}_to_k.lora_down.weight": (4, 768)}, "sd1", "cross-attention width 768"),
    ({f"{SD1_ATTN}_to_v.lora_down.weight": (4, 1024)}, "sd2", "cross-attention width 1024"),
    ({"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (8, 2048)},
     "sdxl", "cross-attention width 2048"),
    ({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (4, 2048)},
     "sdxl", "cross-attention width 2048"),
    ({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight": (4, 768)},
     "sd1", "cross-attention width 768"),
    ({"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1280)},
     "sdxl", "second CLIP text encoder"),
    ({"text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": (4, 1280)},
     "sdxl", "second CLIP text encoder"),
    ({"lora_unet_input_blocks_7_1_transformer_blocks_9_attn1_to_q.lora_down.weight": (4, 1280)},
     "sdxl", "transformer depth above 1"),
    ({"lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight": (4, 1536)}, "sd3", "joint_blocks keys"),
    ({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (4, 3072)}, "flux", "double_blocks keys"),
    ({"transformer.single_transformer_blocks.3.proj_out.lora_A.weight": (4, 15360)},
     "flux", "single_transformer_blocks keys"),
    ({"diffusion_model.noise_refiner.0.attention.to_q.lora_A.weight": (4, 3840)}, "zimage", "noise_refiner keys"),
    ({"lora_unet_context_refiner_1_feed_forward_w1.lora_down.weight": (4, 3840)}, "zimage", "context_refiner keys"),
    # Qwen-Image as kohya/musubi-tuner, diffusers/ai-toolkit and ComfyUI name it.
    ({"lora_unet_transformer_blocks_0_img_mlp_net_0_proj.lora_down.weight": (4, 3072)}, "qwen_image", "img_mlp keys"),
    ({"transformer.transformer_blocks.7.txt_mod.1.lora_A.weight": (4, 3072)}, "qwen_image", "txt_mod keys"),
    ({"diffusion_model.transformer_blocks.2.txt_mlp.net.2.lora_A.weight": (4, 12288)}, "qwen_image", "txt_mlp keys"),
    # diffusers' Flux double blocks are transformer_blocks too, with norm1 / ff / ff_context: not Qwen-Image.
    ({"transformer.transformer_blocks.0.ff_context.net.2.lora_A.weight": (4, 12288)}, None, "no architecture"),
    # Flux.1 and Flux.2 share double_blocks / single_blocks: Flux.2 by its own layers or by its
    # feed-forward widths (Flux.2 dev 6144 wide, Klein 4B 3072 as Flux.1), LoRA or LoHa.
    ({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (4, 6144),
      "lora_unet_double_stream_modulation_img_lin.lora_down.weight": (4, 6144)},
     "flux2", "double_stream_modulation_img keys"),
    ({"transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_A.weight": (4, 6144)},
     "flux2", "to_qkv_mlp_proj keys"),
    ({"transformer.transformer_blocks.0.ff.linear_in.lora_A.weight": (4, 6144)}, "flux2", "ff.linear_in keys"),
    ({"lora_unet_single_blocks_0_linear1.lora_down.weight": (4, 6144),
      "lora_unet_single_blocks_0_linear1.lora_up.weight": (55296, 4)}, "flux2", "9x the block width"),
    ({"lora_unet_single_blocks_0_linear1.lora_down.weight": (4, 3072),
      "lora_unet_single_blocks_0_linear1.lora_up.weight": (21504, 4)}, "flux", "7x the block width"),
    ({"diffusion_model.double_blocks.0.img_mlp.0.lora_A.weight": (4, 3072),
      "diffusion_model.double_blocks.0.img_mlp.0.lora_B.weight": (18432, 4)}, "flux2", "6x the block width"),
    ({"lora_unet_double_blocks_1_txt_mlp_2.hada_w1_a": (3072, 4), "lora_unet_double_blocks_1_txt_mlp_2.hada_w1_b":
      (4, 12288)}, "flux", "4x the block width"),
    ({"lora_unet_single_blocks_2_linear2.lora_down.weight": (4, 24576),
      "lora_unet_single_blocks_2_linear2.lora_up.weight": (6144, 4)}, "flux2", "4x the block width as in Flux.2"),
    ({"lora_unet_double_blocks_0_img_mod_lin.lora_down.weight": (4, 3072)}, "flux", "per-block modulation"),
    ({"lora_unet_double_blocks_0_txt_attn_qkv.lora_down.weight": (4, 6144)}, "flux2", "block width 6144"),
    ({"diffusion_model.single_blocks.0.linear1.lora_A.weight": (4, 4096)}, "flux2", "block width 4096"),
    ({"lora_te_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight": (4, 1024)},
     "sd2", "text-encoder width 1024"),
    ({"lora_te_text_model_encoder_layers_0_self_attn_k_proj.lora_down.weight": (4, 768)},
     "sd1", "text-encoder width 768"),
    # Flux beats the UNet signals; an SD1 LoRA with attn1 only is unknown (widths alike).
    ({"lora_unet_single_blocks_0_linear1.lora_down.weight": (4, 3072),
      f"{SD1_ATTN}_to_k.lora_down.weight": (4, 768)}, "flux", "single_blocks"),
    ({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight": (4, 320)},
     None, "no architecture-specific keys"),
    ({}, None, "no architecture-specific keys"),
])
def test_guess_architecture(shapes, arch, evidence):
    guess = guess_architecture(shapes)
    assert guess.arch == arch
    assert evidence in guess.evidence


@pytest.mark.parametrize("name, expected", [
    ("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", True),
    ("lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha", True),
    ("lora_te3_encoder_block_0_layer_0_SelfAttention_q.lora_up.weight", True),
    ("text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight", True),
    ("lora_unet_input_blocks_1_1_proj_in.lora_down.weight", False),
    ("unet.down_blocks.0.attentions.0.proj_in.lora_A.weight", False),
    ("lora_temporal_x.lora_down.weight", False),
])
def test_is_text_encoder_key(name, expected):
    assert is_text_encoder_key(name) is expected


@pytest.mark.parametrize("stack, expected", [
    (None, []),
    ([], []),
    ([("a.safetensors", 1.0, 0.5)], [("a.safetensors", 1.0, 0.5)]),
    ([["a.safetensors", 1, 0], ("b.safetensors", -0.5, 2.0)], [("a.safetensors", 1.0, 0.0),
                                                               ("b.safetensors", -0.5, 2.0)]),
    ((("None", 1.0, 1.0), ("", 1.0, 1.0), (None, 1.0, 1.0), ("c.safetensors", 0.0, 0.0)),
     [("c.safetensors", 0.0, 0.0)]),
    ([("sub/dir/d.safetensors", 0.25, 0.75)], [("sub/dir/d.safetensors", 0.25, 0.75)]),
])
def test_normalize_stack(stack, expected):
    entries = normalize_stack(stack)
    assert [tuple(e) for e in entries] == expected
    assert all(isinstance(e.strength_model, float) and isinstance(e.strength_clip, float) for e in entries)


@pytest.mark.parametrize("stack, fragment", [
    ("a.safetensors", "is a list of (lora_name, model_strength, clip_strength), got str"),
    ([("a.safetensors", 1.0)], "entry 1: a LORA_STACK entry is (lora_name"),
    ([("a.safetensors", 1.0, 1.0), "b"], "entry 2"),
    ([(3, 1.0, 1.0)], "the LoRA name must be text"),
    ([("a.safetensors", "1.0", 1.0)], "model strength must be a finite number"),
    ([("a.safetensors", 1.0, math.nan)], "CLIP strength must be a finite number"),
    ([("a.safetensors", True, 1.0)], "model strength must be a finite number"),
])
def test_normalize_stack_errors(stack, fragment):
    with pytest.raises(ValueError, match="lora_stack") as err:
        normalize_stack(stack)
    assert fragment in str(err.value)


def test_build_stack_keeps_incoming_first_and_drops_off_and_empty_rows():
    incoming = [["in.safetensors", 0.5, 0.5], ("None", 1.0, 1.0)]
    rows = [(True, "a.safetensors", 1.0, 0.0), (False, "b.safetensors", 1.0, 1.0),
            (True, "None", 1.0, 1.0), (True, "c.safetensors", 0.0, 0.0)]
    stack = build_stack(incoming, rows)
    assert stack == [("in.safetensors", 0.5, 0.5), ("a.safetensors", 1.0, 0.0), ("c.safetensors", 0.0, 0.0)]
    assert all(type(entry) is tuple for entry in stack)
    assert build_stack(stack, []) == stack


@pytest.mark.parametrize("preset, text, expected", [
    ("all", "", ""),
    ("all", "  OUT:0.5 ", "OUT:0.5"),
    ("style only (OUT)", "", "style only (OUT)"),
    ("style only (OUT)", "OUT03:0.5", "IN:0, MID:0, OUT03:0.5"),
    ("all", "1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1", "1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1"),
])
def test_block_text(preset, text, expected):
    assert ApplyOptions(block_preset=preset, block_weights=text).block_text() == expected


@pytest.mark.parametrize("kwargs, fragment", [
    ({"block_preset": "no MID", "block_weights": "1,1,1,1,1,1,1,1,1,1,1,1"}, "set block_preset to 'all'"),
    ({"block_preset": "loud"}, "block_preset 'loud' is not one of"),
    ({"strength_model": math.inf}, "strength_model must be a finite number"),
    ({"strength_clip": math.nan}, "strength_clip must be a finite number"),
])
def test_apply_options_errors(kwargs, fragment):
    with pytest.raises(ValueError) as err:
        ApplyOptions(**kwargs).block_text()
    assert fragment in str(err.value)


@pytest.mark.parametrize("strengths, off", [((0.0, 0.0), True), ((0.0, 0.5), False), ((-1.0, 0.0), False)])
def test_apply_options_off(strengths, off):
    assert ApplyOptions(*strengths).is_off is off


@pytest.mark.parametrize("lists, expected", [
    ([["moody", "Film Grain"], ["film grain", "anamorphic"], []], ["moody", "Film Grain", "anamorphic"]),
    ([[], []], []),
    ([["b", "a"], ["a", "b", "c"]], ["b", "a", "c"]),
])
def test_unique_words(lists, expected):
    assert unique_words(lists) == expected


@pytest.mark.parametrize("blocks, expected", [
    (["OUT03", "BASE", "IN11", "MID", "IN02", "OUT00"], ("BASE", "IN02", "IN11", "MID", "OUT00", "OUT03")),
    (["S01", "D10", "BASE", "D02"], ("BASE", "D02", "D10", "S01")),
    (["J12", "J03", "J03"], ("J03", "J12")),
])
def test_sorted_blocks(blocks, expected):
    assert _sorted_blocks(blocks) == expected


class _Lora:
    def __init__(self, tensors, metadata):
        self.tensors, self.metadata, self.path = tensors, metadata, None


@pytest.mark.parametrize("name, lora, fragment", [
    ("None", None, "no LoRA chosen"),
    (" ", None, "no LoRA chosen"),
    ("a.safetensors", "a.safetensors", "expected a LoRA from the LookDev trainer"),
    ("a.safetensors", _Lora({}, {}), "expected a LoRA from the LookDev trainer"),
])
def test_choose_source_errors(name, lora, fragment):
    with pytest.raises(ValueError, match=fragment):
        choose_source(name, lora)


def test_choose_source_prefers_the_connected_lora():
    lora = _Lora({"x.lora_up.weight": object()}, {})
    assert choose_source("a.safetensors", lora) is lora
    assert choose_source("a.safetensors", None) == "a.safetensors"


@pytest.mark.parametrize("scaled, warnings, expected", [
    ({}, (), "a.safetensors: 6 of 9 keys matched (2 model weights, 1 CLIP weights)\nblocks: BASE, IN01, OUT03"),
    ({"IN01": 0.0, "OUT03": 0.5}, ("3 keys match nothing",),
     "a.safetensors: 6 of 9 keys matched (2 model weights, 1 CLIP weights)\nblocks: BASE, IN01, OUT03\n"
     "block weights: IN01 0, OUT03 0.5\nwarning: 3 keys match nothing"),
])
def test_report_text(scaled, warnings, expected):
    report = LoraReport("a.safetensors", 9, 6, 2, 1, ("BASE", "IN01", "OUT03"), scaled, warnings)
    assert report.text() == expected
