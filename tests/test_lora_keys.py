import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lookdev.trainer.lora.keys import (
    SD15_LAYOUT,
    SDXL_LAYOUT,
    UNetLayout,
    diffusers_unet_names,
    kohya_name,
    kohya_names,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_LAYOUT = UNetLayout.from_unet_config({
    "num_res_blocks": [1, 1], "channel_mult": [1, 2], "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1], "transformer_depth_middle": 1,
})
# As ComfyUI's model detection stores them.
UNET_CONFIGS = {
    "sd15": {"num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4],
             "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
             "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "transformer_depth_middle": 1},
    "sdxl": {"num_res_blocks": [2, 2, 2], "channel_mult": [1, 2, 4], "transformer_depth": [0, 0, 2, 2, 10, 10],
             "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10], "transformer_depth_middle": 10},
    "tiny": {"num_res_blocks": [1, 1], "channel_mult": [1, 2], "transformer_depth": [1, 1],
             "transformer_depth_output": [1, 1, 1, 1], "transformer_depth_middle": 1},
}


@pytest.mark.parametrize("name, layout", [("sd15", SD15_LAYOUT), ("sdxl", SDXL_LAYOUT), ("tiny", TINY_LAYOUT)])
def test_layout_constants_match_comfyui_configs(name, layout):
    assert UNetLayout.from_unet_config(UNET_CONFIGS[name]) == layout


@pytest.mark.parametrize("path, expected", [
    ("input_blocks.1.1.transformer_blocks.0.attn1.to_q",
     "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"),
    ("input_blocks.2.1.proj_in", "lora_unet_down_blocks_0_attentions_1_proj_in"),
    ("input_blocks.4.1.transformer_blocks.0.attn2.to_out.0",
     "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_out_0"),
    ("input_blocks.8.1.transformer_blocks.0.ff.net.0.proj",
     "lora_unet_down_blocks_2_attentions_1_transformer_blocks_0_ff_net_0_proj"),
    ("input_blocks.3.0.op", "lora_unet_down_blocks_0_downsamplers_0_conv"),
    ("input_blocks.9.0.op", "lora_unet_down_blocks_2_downsamplers_0_conv"),
    ("input_blocks.4.0.skip_connection", "lora_unet_down_blocks_1_resnets_0_conv_shortcut"),
    ("input_blocks.11.0.in_layers.2", "lora_unet_down_blocks_3_resnets_1_conv1"),
    ("middle_block.1.proj_in", "lora_unet_mid_block_attentions_0_proj_in"),
    ("middle_block.1.transformer_blocks.0.attn1.to_k",
     "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn1_to_k"),
    ("middle_block.0.emb_layers.1", "lora_unet_mid_block_resnets_0_time_emb_proj"),
    ("middle_block.2.out_layers.3", "lora_unet_mid_block_resnets_1_conv2"),
    ("output_blocks.0.0.in_layers.2", "lora_unet_up_blocks_0_resnets_0_conv1"),
    ("output_blocks.2.1.conv", "lora_unet_up_blocks_0_upsamplers_0_conv"),
    ("output_blocks.5.2.conv", "lora_unet_up_blocks_1_upsamplers_0_conv"),
    ("output_blocks.8.2.conv", "lora_unet_up_blocks_2_upsamplers_0_conv"),
    ("output_blocks.5.0.in_layers.2", "lora_unet_up_blocks_1_resnets_2_conv1"),
    ("output_blocks.3.1.transformer_blocks.0.ff.net.2",
     "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_ff_net_2"),
    ("output_blocks.11.1.proj_out", "lora_unet_up_blocks_3_attentions_2_proj_out"),
    ("output_blocks.9.0.out_layers.0", "lora_unet_up_blocks_3_resnets_0_norm2"),
    ("input_blocks.0.0", "lora_unet_conv_in"),
    ("time_embed.0", "lora_unet_time_embedding_linear_1"),
    ("time_embed.2", "lora_unet_time_embedding_linear_2"),
    ("out.0", "lora_unet_conv_norm_out"),
    ("out.2", "lora_unet_conv_out"),
    ("diffusion_model.input_blocks.1.1.proj_out", "lora_unet_down_blocks_0_attentions_0_proj_out"),
])
@pytest.mark.parametrize("arch", ["sd1", "sd2"])
def test_sd1_sd2_use_diffusers_names(arch, path, expected):
    assert kohya_name(path, arch, SD15_LAYOUT) == expected


@pytest.mark.parametrize("path, expected", [
    ("input_blocks.4.1.transformer_blocks.0.attn1.to_q", "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"),
    ("input_blocks.8.1.transformer_blocks.1.attn2.to_out.0",
     "lora_unet_input_blocks_8_1_transformer_blocks_1_attn2_to_out_0"),
    ("middle_block.1.transformer_blocks.9.ff.net.2", "lora_unet_middle_block_1_transformer_blocks_9_ff_net_2"),
    ("output_blocks.0.1.transformer_blocks.9.attn2.to_k",
     "lora_unet_output_blocks_0_1_transformer_blocks_9_attn2_to_k"),
    ("output_blocks.2.2.conv", "lora_unet_output_blocks_2_2_conv"),
    ("label_emb.0.0", "lora_unet_label_emb_0_0"),
    ("diffusion_model.input_blocks.7.1.proj_in", "lora_unet_input_blocks_7_1_proj_in"),
])
@pytest.mark.parametrize("layout", [SDXL_LAYOUT, None])
def test_sdxl_uses_kohya_ldm_names(path, expected, layout):
    assert kohya_name(path, "sdxl", layout) == expected


@pytest.mark.parametrize("layout, ldm, diffusers", [
    (SDXL_LAYOUT, "input_blocks.4.1.proj_in", "down_blocks.1.attentions.0.proj_in"),
    (SDXL_LAYOUT, "input_blocks.7.1.transformer_blocks.9.attn1.to_q",
     "down_blocks.2.attentions.0.transformer_blocks.9.attn1.to_q"),
    (SDXL_LAYOUT, "input_blocks.6.0.op", "down_blocks.1.downsamplers.0.conv"),
    (SDXL_LAYOUT, "middle_block.1.transformer_blocks.9.attn2.to_v",
     "mid_block.attentions.0.transformer_blocks.9.attn2.to_v"),
    (SDXL_LAYOUT, "output_blocks.2.2.conv", "up_blocks.0.upsamplers.0.conv"),
    (SDXL_LAYOUT, "output_blocks.5.2.conv", "up_blocks.1.upsamplers.0.conv"),
    (SDXL_LAYOUT, "output_blocks.1.1.transformer_blocks.3.attn1.to_out.0",
     "up_blocks.0.attentions.1.transformer_blocks.3.attn1.to_out.0"),
    (SDXL_LAYOUT, "output_blocks.8.0.skip_connection", "up_blocks.2.resnets.2.conv_shortcut"),
    (SDXL_LAYOUT, "label_emb.0.2", "class_embedding.linear_2"),
    (TINY_LAYOUT, "input_blocks.1.1.transformer_blocks.0.attn1.to_q",
     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
    (TINY_LAYOUT, "input_blocks.2.0.op", "down_blocks.0.downsamplers.0.conv"),
    (TINY_LAYOUT, "input_blocks.3.1.proj_in", "down_blocks.1.attentions.0.proj_in"),
    (TINY_LAYOUT, "input_blocks.3.0.in_layers.2", "down_blocks.1.resnets.0.conv1"),
    (TINY_LAYOUT, "middle_block.1.transformer_blocks.0.attn2.to_q",
     "mid_block.attentions.0.transformer_blocks.0.attn2.to_q"),
    (TINY_LAYOUT, "output_blocks.0.1.proj_out", "up_blocks.0.attentions.0.proj_out"),
    (TINY_LAYOUT, "output_blocks.1.2.conv", "up_blocks.0.upsamplers.0.conv"),
    (TINY_LAYOUT, "output_blocks.2.0.emb_layers.1", "up_blocks.1.resnets.0.time_emb_proj"),
    (TINY_LAYOUT, "output_blocks.3.1.transformer_blocks.0.ff.net.0.proj",
     "up_blocks.1.attentions.1.transformer_blocks.0.ff.net.0.proj"),
])
def test_diffusers_map_per_layout(layout, ldm, diffusers):
    assert diffusers_unet_names(layout)[ldm] == diffusers


@pytest.mark.parametrize("path, expected", [
    ("input_blocks.1.1.transformer_blocks.0.attn1.to_q",
     "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"),
    ("input_blocks.2.0.op", "lora_unet_down_blocks_0_downsamplers_0_conv"),
    ("output_blocks.1.2.conv", "lora_unet_up_blocks_0_upsamplers_0_conv"),
    ("output_blocks.3.1.proj_in", "lora_unet_up_blocks_1_attentions_1_proj_in"),
])
def test_tiny_layout_kohya_names(path, expected):
    assert kohya_name(path, "sd1", TINY_LAYOUT) == expected


@pytest.mark.parametrize("arch, path, expected", [
    ("sd3", "joint_blocks.0.x_block.attn.qkv", "lora_unet_joint_blocks_0_x_block_attn_qkv"),
    ("sd3", "joint_blocks.23.context_block.mlp.fc2", "lora_unet_joint_blocks_23_context_block_mlp_fc2"),
    ("sd3", "diffusion_model.joint_blocks.5.x_block.attn.proj", "lora_unet_joint_blocks_5_x_block_attn_proj"),
    ("flux", "double_blocks.0.img_attn.qkv", "lora_unet_double_blocks_0_img_attn_qkv"),
    ("flux", "double_blocks.18.txt_mlp.0", "lora_unet_double_blocks_18_txt_mlp_0"),
    ("flux", "single_blocks.37.linear1", "lora_unet_single_blocks_37_linear1"),
    ("flux", "single_blocks.0.modulation.lin", "lora_unet_single_blocks_0_modulation_lin"),
    ("other", "transformer_blocks.0.attn.to_q", "lora_unet_transformer_blocks_0_attn_to_q"),
    ("other", "layers.3.feed_forward.w1", "lora_unet_layers_3_feed_forward_w1"),
])
def test_dit_and_other_names_are_module_paths(arch, path, expected):
    assert kohya_name(path, arch) == expected


@pytest.mark.parametrize("arch, path, expected", [
    ("sd1", "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj",
     "lora_te_text_model_encoder_layers_0_self_attn_q_proj"),
    ("sd1", "clip_l.transformer.text_model.encoder.layers.11.mlp.fc2", "lora_te_text_model_encoder_layers_11_mlp_fc2"),
    ("sd2", "clip_h.transformer.text_model.encoder.layers.22.self_attn.out_proj",
     "lora_te_text_model_encoder_layers_22_self_attn_out_proj"),
    ("sdxl", "clip_l.transformer.text_model.encoder.layers.3.self_attn.k_proj",
     "lora_te1_text_model_encoder_layers_3_self_attn_k_proj"),
    ("sdxl", "clip_g.transformer.text_model.encoder.layers.31.mlp.fc1",
     "lora_te2_text_model_encoder_layers_31_mlp_fc1"),
    ("sd3", "clip_g.transformer.text_model.encoder.layers.0.self_attn.v_proj",
     "lora_te2_text_model_encoder_layers_0_self_attn_v_proj"),
    ("sd3", "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q",
     "lora_te3_encoder_block_0_layer_0_SelfAttention_q"),
    ("flux", "clip_l.transformer.text_model.encoder.layers.5.mlp.fc1", "lora_te1_text_model_encoder_layers_5_mlp_fc1"),
    ("flux", "t5xxl.transformer.encoder.block.23.layer.1.DenseReluDense.wo",
     "lora_te3_encoder_block_23_layer_1_DenseReluDense_wo"),
])
def test_text_encoder_names(arch, path, expected):
    assert kohya_name(path, arch, SD15_LAYOUT if arch in ("sd1", "sd2") else None) == expected


@pytest.mark.parametrize("arch, layout, path, fragment", [
    ("sd1", None, "input_blocks.1.1.proj_in", "depend on the UNet layout"),
    ("sd1", SD15_LAYOUT, "input_blocks.1.1.transformer_blocks.1.attn1.to_q", "not a weight module"),
    ("sd1", SD15_LAYOUT, "double_blocks.0.img_attn.qkv", "not a weight module"),
    ("sdxl", SDXL_LAYOUT, "input_blocks.1.1.proj_in", "not a weight module"),
    ("flux", None, "double_blocks..0", "not a module path"),
    ("flux", None, "", "not a module path"),
    ("flux", None, "double_blocks.0.img attn", "not a module path"),
    ("flux-2", None, "double_blocks.0.img_attn.qkv", "unknown architecture"),
    ("sd1", SD15_LAYOUT, "clip_g.transformer.text_model.encoder.layers.0.mlp.fc1", "no text encoder 'clip_g'"),
    ("sd1", SD15_LAYOUT, "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q", "no text encoder 't5xxl'"),
    ("sd1", SD15_LAYOUT, "clip_l.transformer.text_model.encoder.layers.40.mlp.fc1", "LORA_CLIP_MAP"),
    ("sd1", SD15_LAYOUT, "clip_l.transformer.text_model.embeddings.token_embedding", "LORA_CLIP_MAP"),
    ("flux", None, "t5xxl.shared", "start with 't5xxl.transformer.'"),
    ("other", None, "clip_l.transformer.text_model.encoder.layers.0.mlp.fc1", "no text encoder"),
])
def test_unmappable_paths(arch, layout, path, fragment):
    with pytest.raises(ValueError) as info:
        kohya_name(path, arch, layout)
    assert fragment in str(info.value)


def test_kohya_names_lists_every_problem_and_collision():
    paths = ["double_blocks.0.img_attn.qkv", "a.b_c", "a_b.c", "bad..path", "double_blocks.0.img_attn.qkv"]
    with pytest.raises(ValueError) as info:
        kohya_names(paths, "flux")
    message = str(info.value)
    assert "'bad..path'" in message
    assert "'a.b_c' and 'a_b.c' would share the kohya name 'lora_unet_a_b_c'" in message
    assert "img_attn" not in message


def test_kohya_names_keeps_input_order_and_skips_repeats():
    paths = ["single_blocks.1.linear2", "double_blocks.0.img_attn.proj", "single_blocks.1.linear2"]
    assert list(kohya_names(paths, "flux").items()) == [
        ("single_blocks.1.linear2", "lora_unet_single_blocks_1_linear2"),
        ("double_blocks.0.img_attn.proj", "lora_unet_double_blocks_0_img_attn_proj"),
    ]


def test_every_sd15_module_gets_a_unique_name():
    names = kohya_names(diffusers_unet_names(SD15_LAYOUT), "sd1", SD15_LAYOUT)
    assert len(set(names.values())) == len(names)


@pytest.mark.parametrize("config, fragment", [
    ({"hidden_size": 3072, "depth": 19}, "not an ldm UNet"),
    ({**UNET_CONFIGS["sd15"], "num_res_blocks": [2, 2, 2]}, "num_res_blocks"),
    ({**UNET_CONFIGS["sd15"], "transformer_depth": [1, 1, 1]}, "transformer_depth needs 8 entries"),
    ({**UNET_CONFIGS["sd15"], "transformer_depth_output": [1] * 8}, "transformer_depth_output needs 12 entries"),
    ({**UNET_CONFIGS["sd15"], "channel_mult": [], "num_res_blocks": []}, "channel_mult is empty"),
])
def test_bad_unet_configs(config, fragment):
    with pytest.raises(ValueError) as info:
        UNetLayout.from_unet_config(config)
    assert fragment in str(info.value)


def test_int_num_res_blocks_is_expanded_like_comfyui():
    config = {**UNET_CONFIGS["sd15"], "num_res_blocks": 2}
    assert UNetLayout.from_unet_config(config) == SD15_LAYOUT


def _comfyui():
    path = Path(os.environ.get("COMFYUI_PATH") or ROOT / ".host" / "ComfyUI")
    return path if (path / "comfy" / "lora.py").exists() else None


# Runs in a child process: ComfyUI's own key maps, from a model that is only a list of weight
# names (model_lora_keys_* read nothing else from it for these architectures).
_COMFY_SCRIPT = """
import json, sys, types
sys.path.insert(0, sys.argv[1])
sys.argv = [sys.argv[0], "--cpu"] + sys.argv[2:]
import comfy.options
comfy.options.enable_args_parsing()
import comfy.lora, comfy.utils
request = json.loads(sys.stdin.read())

def model(keys, unet_config):
    return types.SimpleNamespace(state_dict=lambda: dict.fromkeys(keys),
                                 model_config=types.SimpleNamespace(unet_config=unet_config))

out = {"unet_to_diffusers": {n: comfy.utils.unet_to_diffusers(c) for n, c in request["configs"].items()},
       "unet": {}, "clip": {}}
for name, case in request["unet"].items():
    keys = ["diffusion_model." + p + ".weight" for p in case["paths"]]
    out["unet"][name] = comfy.lora.model_lora_keys_unet(model(keys, case["config"]), {})
for name, keys in request["clip"].items():
    out["clip"][name] = comfy.lora.model_lora_keys_clip(model([k + ".weight" for k in keys], {}), {})
print(json.dumps(out))
"""

DIT_PATHS = {
    "sd3": ["joint_blocks.0.x_block.attn.qkv", "joint_blocks.0.context_block.mlp.fc1",
            "joint_blocks.23.x_block.attn.proj"],
    "flux": ["double_blocks.0.img_attn.qkv", "double_blocks.18.txt_mlp.2", "single_blocks.37.linear1",
             "single_blocks.0.modulation.lin"],
}
_CLIP_L0 = "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj"
_CLIP_G0 = "clip_g.transformer.text_model.encoder.layers.0.self_attn.q_proj"
TE_PATHS = {
    "sd1": [_CLIP_L0, "clip_l.transformer.text_model.encoder.layers.11.mlp.fc2"],
    "sd2": ["clip_h.transformer.text_model.encoder.layers.22.self_attn.out_proj"],
    "sdxl": [_CLIP_L0, _CLIP_G0, "clip_g.transformer.text_model.encoder.layers.31.mlp.fc1"],
    "sd3": [_CLIP_L0, _CLIP_G0, "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q"],
    "flux": [_CLIP_L0, "t5xxl.transformer.encoder.block.23.layer.1.DenseReluDense.wo"],
}


@pytest.fixture(scope="module")
def comfy_maps():
    comfy = _comfyui()
    if comfy is None:
        pytest.skip("ComfyUI source not found (set COMFYUI_PATH or run scripts/bootstrap.sh)")
    request = {
        "configs": UNET_CONFIGS,
        "unet": {
            "sd15": {"config": UNET_CONFIGS["sd15"], "paths": list(diffusers_unet_names(SD15_LAYOUT))},
            "sdxl": {"config": UNET_CONFIGS["sdxl"], "paths": list(diffusers_unet_names(SDXL_LAYOUT))},
            **{arch: {"config": {}, "paths": paths} for arch, paths in DIT_PATHS.items()},
        },
        "clip": TE_PATHS,
    }
    result = subprocess.run([sys.executable, "-c", _COMFY_SCRIPT, str(comfy)], input=json.dumps(request),
                            capture_output=True, text=True, timeout=300, cwd=comfy)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name, layout", [("sd15", SD15_LAYOUT), ("sdxl", SDXL_LAYOUT), ("tiny", TINY_LAYOUT)])
def test_diffusers_map_is_comfyui_unet_to_diffusers_inverted(comfy_maps, name, layout):
    comfy = {d[:-len(".weight")]: ldm[:-len(".weight")]
             for d, ldm in comfy_maps["unet_to_diffusers"][name].items() if d.endswith(".weight")}
    ours = diffusers_unet_names(layout)
    assert set(ours) == set(comfy.values())
    for ldm, diffusers in ours.items():
        assert comfy[diffusers] == ldm


@pytest.mark.parametrize("case, arch, layout", [
    ("sd15", "sd1", SD15_LAYOUT), ("sd15", "sd2", SD15_LAYOUT), ("sdxl", "sdxl", SDXL_LAYOUT),
    ("sd3", "sd3", None), ("flux", "flux", None),
])
def test_comfyui_loads_every_diffusion_name_into_its_module(comfy_maps, case, arch, layout):
    key_map = comfy_maps["unet"][case]
    paths = list(diffusers_unet_names(layout)) if layout else DIT_PATHS[arch]
    for path, name in kohya_names(paths, arch, layout).items():
        assert key_map[name] == f"diffusion_model.{path}.weight"


@pytest.mark.parametrize("arch", list(TE_PATHS))
def test_comfyui_loads_every_text_encoder_name_into_its_module(comfy_maps, arch):
    key_map = comfy_maps["clip"][arch]
    for path, name in kohya_names(TE_PATHS[arch], arch, SD15_LAYOUT if arch in ("sd1", "sd2") else None).items():
        assert key_map[name] == f"{path}.weight"
