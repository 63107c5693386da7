"""kohya names from ComfyUI's own LoRA key maps. The expected names are the kohya/A1111 spellings,
written out; the key maps come from ComfyUI's loader for models that are only weight names
(all `comfy.lora.model_lora_keys_unet/_clip` read of these architectures)."""

import types

import pytest

from lookdev.trainer.lora.keys import kohya_name, kohya_names

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
DIT_PATHS = [
    "joint_blocks.0.x_block.attn.qkv", "joint_blocks.0.context_block.mlp.fc1", "joint_blocks.23.x_block.attn.proj",
    "joint_blocks.23.context_block.mlp.fc2", "joint_blocks.5.x_block.attn.proj",
    "double_blocks.0.img_attn.qkv", "double_blocks.0.img_attn.proj", "double_blocks.18.txt_mlp.0",
    "double_blocks.18.txt_mlp.2", "single_blocks.37.linear1", "single_blocks.1.linear2",
    "single_blocks.0.modulation.lin", "transformer_blocks.0.attn.to_q", "layers.3.feed_forward.w1",
]
SAME_KOHYA_NAME = ["a.b_c", "a_b.c"]
_CLIP_L0 = "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj"
_CLIP_G0 = "clip_g.transformer.text_model.encoder.layers.0.self_attn.q_proj"
TE_PATHS = {
    "sd1": [_CLIP_L0, "clip_l.transformer.text_model.encoder.layers.11.mlp.fc2"],
    "sd2": ["clip_h.transformer.text_model.encoder.layers.22.self_attn.out_proj"],
    "sdxl": [_CLIP_L0, _CLIP_G0, "clip_g.transformer.text_model.encoder.layers.31.mlp.fc1",
             "clip_l.transformer.text_model.encoder.layers.3.self_attn.k_proj"],
    "sd3": [_CLIP_L0, _CLIP_G0, "clip_g.transformer.text_model.encoder.layers.0.self_attn.v_proj",
            "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q"],
    "flux": [_CLIP_L0, "clip_l.transformer.text_model.encoder.layers.5.mlp.fc1",
             "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q",
             "t5xxl.transformer.encoder.block.23.layer.1.DenseReluDense.wo"],
}


def unet_paths(config):
    """The ldm UNet's weight modules for this config, as ComfyUI lists them."""
    import comfy.utils

    return sorted({ldm[:-len(".weight")] for ldm in comfy.utils.unet_to_diffusers(config).values()
                   if ldm.endswith(".weight")})


def _weights_only(keys, unet_config=None):
    inner = types.SimpleNamespace(state_dict=lambda: dict.fromkeys(keys),
                                  model_config=types.SimpleNamespace(unet_config=unet_config or {}))
    return types.SimpleNamespace(model=inner, cond_stage_model=inner)


@pytest.fixture(scope="module")
def key_maps(comfy):
    """ComfyUI's key maps (through comfy_bridge.lora_key_map): per UNet layout, for the DiT paths,
    and per architecture with its UNet and text encoders."""
    from lookdev.trainer import comfy_bridge as bridge

    def unet(config):
        return _weights_only([f"diffusion_model.{p}.weight" for p in unet_paths(config)], config)

    dit = _weights_only([f"diffusion_model.{p}.weight" for p in DIT_PATHS + SAME_KOHYA_NAME])
    maps = {name: bridge.lora_key_map(unet(config)) for name, config in UNET_CONFIGS.items()}
    maps["dit"] = bridge.lora_key_map(dit)
    bases = {"sd1": unet(UNET_CONFIGS["sd15"]), "sd2": unet(UNET_CONFIGS["sd15"]),
             "sdxl": unet(UNET_CONFIGS["sdxl"]), "sd3": dit, "flux": dit}
    for arch, paths in TE_PATHS.items():
        maps[arch] = bridge.lora_key_map(bases[arch], _weights_only([f"{p}.weight" for p in paths]))
    return maps


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
def test_sd1_sd2_use_diffusers_names(key_maps, arch, path, expected):
    assert kohya_name(path, arch, key_maps["sd15"]) == expected


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
def test_sdxl_uses_kohya_ldm_names(key_maps, path, expected):
    assert kohya_name(path, "sdxl", key_maps["sdxl"]) == expected


# Diffusers names per UNet layout (SD2 LoRAs are named this way whatever the layout).
@pytest.mark.parametrize("layout, ldm, diffusers", [
    ("sdxl", "input_blocks.4.1.proj_in", "down_blocks.1.attentions.0.proj_in"),
    ("sdxl", "input_blocks.7.1.transformer_blocks.9.attn1.to_q",
     "down_blocks.2.attentions.0.transformer_blocks.9.attn1.to_q"),
    ("sdxl", "input_blocks.6.0.op", "down_blocks.1.downsamplers.0.conv"),
    ("sdxl", "middle_block.1.transformer_blocks.9.attn2.to_v",
     "mid_block.attentions.0.transformer_blocks.9.attn2.to_v"),
    ("sdxl", "output_blocks.2.2.conv", "up_blocks.0.upsamplers.0.conv"),
    ("sdxl", "output_blocks.5.2.conv", "up_blocks.1.upsamplers.0.conv"),
    ("sdxl", "output_blocks.1.1.transformer_blocks.3.attn1.to_out.0",
     "up_blocks.0.attentions.1.transformer_blocks.3.attn1.to_out.0"),
    ("sdxl", "output_blocks.8.0.skip_connection", "up_blocks.2.resnets.2.conv_shortcut"),
    ("sdxl", "label_emb.0.2", "class_embedding.linear_2"),
    ("tiny", "input_blocks.1.1.transformer_blocks.0.attn1.to_q",
     "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
    ("tiny", "input_blocks.2.0.op", "down_blocks.0.downsamplers.0.conv"),
    ("tiny", "input_blocks.3.1.proj_in", "down_blocks.1.attentions.0.proj_in"),
    ("tiny", "input_blocks.3.0.in_layers.2", "down_blocks.1.resnets.0.conv1"),
    ("tiny", "middle_block.1.transformer_blocks.0.attn2.to_q",
     "mid_block.attentions.0.transformer_blocks.0.attn2.to_q"),
    ("tiny", "output_blocks.0.1.proj_out", "up_blocks.0.attentions.0.proj_out"),
    ("tiny", "output_blocks.1.2.conv", "up_blocks.0.upsamplers.0.conv"),
    ("tiny", "output_blocks.2.0.emb_layers.1", "up_blocks.1.resnets.0.time_emb_proj"),
    ("tiny", "output_blocks.3.1.transformer_blocks.0.ff.net.0.proj",
     "up_blocks.1.attentions.1.transformer_blocks.0.ff.net.0.proj"),
])
def test_diffusers_names_per_layout(key_maps, layout, ldm, diffusers):
    assert kohya_name(ldm, "sd2", key_maps[layout]) == "lora_unet_" + diffusers.replace(".", "_")


@pytest.mark.parametrize("path, expected", [
    ("input_blocks.1.1.transformer_blocks.0.attn1.to_q",
     "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"),
    ("input_blocks.2.0.op", "lora_unet_down_blocks_0_downsamplers_0_conv"),
    ("output_blocks.1.2.conv", "lora_unet_up_blocks_0_upsamplers_0_conv"),
    ("output_blocks.3.1.proj_in", "lora_unet_up_blocks_1_attentions_1_proj_in"),
])
def test_tiny_layout_kohya_names(key_maps, path, expected):
    assert kohya_name(path, "sd1", key_maps["tiny"]) == expected


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
def test_dit_and_other_names_are_module_paths(key_maps, arch, path, expected):
    assert kohya_name(path, arch, key_maps["dit"]) == expected


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
def test_text_encoder_names(key_maps, arch, path, expected):
    assert kohya_name(path, arch, key_maps[arch]) == expected


@pytest.mark.parametrize("arch, model, path, fragment", [
    ("sd1", "sd1", "input_blocks.1.1.transformer_blocks.1.attn1.to_q", "not a weight module"),
    ("sd1", "sd1", "double_blocks.0.img_attn.qkv", "not a weight module"),
    ("sdxl", "sdxl", "input_blocks.1.1.proj_in", "not a weight module"),
    ("flux", "flux", "double_blocks..0", "not a module path"),
    ("flux", "flux", "", "not a module path"),
    ("flux", "flux", "double_blocks.0.img attn", "not a module path"),
    ("flux-2", "flux", "double_blocks.0.img_attn.qkv", "unknown architecture"),
    ("sd1", "sd1", "clip_g.transformer.text_model.encoder.layers.0.mlp.fc1", "no text encoder 'clip_g'"),
    ("sd1", "sd1", "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q", "no text encoder 't5xxl'"),
    ("sd1", "sd1", "clip_l.transformer.text_model.encoder.layers.40.mlp.fc1", "LORA_CLIP_MAP"),
    ("sd1", "sd1", "clip_l.transformer.text_model.embeddings.token_embedding", "LORA_CLIP_MAP"),
    ("flux", "flux", "t5xxl.shared", "start with 't5xxl.transformer.'"),
    ("other", "dit", "clip_l.transformer.text_model.encoder.layers.0.mlp.fc1", "no text encoder"),
])
def test_unmappable_paths(key_maps, arch, model, path, fragment):
    with pytest.raises(ValueError) as info:
        kohya_name(path, arch, key_maps[model])
    assert fragment in str(info.value)


def test_kohya_names_lists_every_problem_and_collision(key_maps):
    paths = ["double_blocks.0.img_attn.qkv", "a.b_c", "a_b.c", "bad..path", "double_blocks.0.img_attn.qkv"]
    with pytest.raises(ValueError) as info:
        kohya_names(paths, "flux", key_maps["dit"])
    message = str(info.value)
    assert "'bad..path'" in message
    assert "'a.b_c' and 'a_b.c' would share the kohya name 'lora_unet_a_b_c'" in message
    assert "img_attn" not in message


def test_kohya_names_keeps_input_order_and_skips_repeats(key_maps):
    paths = ["single_blocks.1.linear2", "double_blocks.0.img_attn.proj", "single_blocks.1.linear2"]
    assert list(kohya_names(paths, "flux", key_maps["dit"]).items()) == [
        ("single_blocks.1.linear2", "lora_unet_single_blocks_1_linear2"),
        ("double_blocks.0.img_attn.proj", "lora_unet_double_blocks_0_img_attn_proj"),
    ]


def test_every_sd15_module_gets_a_unique_name_that_comfyui_loads_into_it(key_maps):
    paths = unet_paths(UNET_CONFIGS["sd15"])
    names = kohya_names(paths, "sd1", key_maps["sd15"])
    assert len(set(names.values())) == len(names) == len(paths)
    for path, name in names.items():
        assert key_maps["sd15"][name] == f"diffusion_model.{path}.weight"


@pytest.mark.parametrize("arch, model", [("sdxl", "sdxl"), ("sd3", "dit"), ("flux", "dit")])
def test_comfyui_loads_every_diffusion_name_into_its_module(key_maps, arch, model):
    paths = unet_paths(UNET_CONFIGS["sdxl"]) if model == "sdxl" else DIT_PATHS
    for path, name in kohya_names(paths, arch, key_maps[model]).items():
        assert key_maps[model][name] == f"diffusion_model.{path}.weight"


@pytest.mark.parametrize("arch", list(TE_PATHS))
def test_comfyui_loads_every_text_encoder_name_into_its_module(key_maps, arch):
    for path, name in kohya_names(TE_PATHS[arch], arch, key_maps[arch]).items():
        assert key_maps[arch][name] == f"{path}.weight"
