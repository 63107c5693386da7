import pytest

from lookdev.trainer.lora.blocks import (
    PRESETS,
    VECTOR_BLOCKS,
    block_of,
    idle_items,
    parse_block_weights,
    presets_for,
    weights_by_key,
)

SD_BLOCKS = ["BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "MID"] + [f"OUT{i:02d}" for i in range(3, 12)]
SDXL_BLOCKS = ["BASE", "IN04", "IN05", "IN07", "IN08", "MID"] + [f"OUT{i:02d}" for i in range(6)]
FLUX_BLOCKS = ["BASE", "D00", "D01", "D18", "S00", "S03", "S37"]
ZIMAGE_BLOCKS = ["BASE", *(f"L{i:02d}" for i in range(30)), "NR00", "NR01", "CR00", "CR01"]
SD3_BLOCKS = ["BASE", "J00", "J01", "J02", "J03"]
QWEN_IMAGE_BLOCKS = ["BASE", *(f"T{i:02d}" for i in range(60))]


@pytest.mark.parametrize("arch, key, block", [
    ("sd1", "diffusion_model.input_blocks.4.1.proj_in.weight", "IN04"),
    ("sd1", "diffusion_model.input_blocks.0.0.weight", "IN00"),
    ("sd1", "diffusion_model.middle_block.1.transformer_blocks.0.attn1.to_q.weight", "MID"),
    ("sd1", "diffusion_model.middle_block.0.in_layers.2.bias", "MID"),
    ("sd1", "diffusion_model.output_blocks.11.1.proj_out.weight", "OUT11"),
    ("sd2", "diffusion_model.output_blocks.5.2.conv.weight", "OUT05"),
    ("sd1", "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight", "BASE"),
    ("sd1", "diffusion_model.time_embed.0.weight", "BASE"),
    ("sd1", "diffusion_model.out.2.weight", "BASE"),
    ("sd1", "diffusion_model.double_blocks.0.img_attn.qkv.weight", "BASE"),
    ("sdxl", "diffusion_model.input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight", "IN08"),
    ("sdxl", "diffusion_model.label_emb.0.0.weight", "BASE"),
    ("sdxl", "clip_g.transformer.text_model.encoder.layers.31.mlp.fc1.weight", "BASE"),
    ("sd3", "diffusion_model.joint_blocks.12.x_block.attn.qkv.weight", "J12"),
    ("sd3", "diffusion_model.x_embedder.proj.weight", "BASE"),
    ("zimage", "diffusion_model.layers.12.attention.qkv.weight", "L12"),
    ("zimage", "diffusion_model.noise_refiner.1.feed_forward.w1.weight", "NR01"),
    ("zimage", "diffusion_model.context_refiner.0.attention.out.weight", "CR00"),
    ("zimage", "diffusion_model.cap_embedder.1.weight", "BASE"),
    ("qwen_image", "diffusion_model.transformer_blocks.59.img_mlp.net.2.weight", "T59"),
    ("qwen_image", "diffusion_model.transformer_blocks.3.attn.add_q_proj.weight", "T03"),
    ("qwen_image", "diffusion_model.txt_in.weight", "BASE"),
    ("flux2", "diffusion_model.double_blocks.7.txt_mlp.0.weight", "D07"),
    ("flux2", "diffusion_model.single_blocks.47.linear1.weight", "S47"),
    ("flux2", "diffusion_model.double_stream_modulation_img.lin.weight", "BASE"),
    ("flux2", "diffusion_model.single_stream_modulation.lin.weight", "BASE"),
    ("sd3", "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight", "BASE"),
    ("flux", "diffusion_model.double_blocks.0.img_attn.qkv.weight", "D00"),
    ("flux", "diffusion_model.single_blocks.37.linear2.weight", "S37"),
    ("flux", ("diffusion_model.single_blocks.3.linear1.weight", (0, 0, 9216)), "S03"),
    ("flux", "diffusion_model.img_in.weight", "BASE"),
    ("flux", "diffusion_model.middle_block.1.proj_in.weight", "BASE"),
    ("other", "diffusion_model.transformer_blocks.0.attn.to_q.weight", "BASE"),
    ("other", "text_encoders.qwen25_7b.model.layers.0.mlp.up_proj.weight", "BASE"),
])
def test_block_of(arch, key, block):
    assert block_of(key, arch) == block


def _expected(blocks, default=1.0, **overrides):
    return {b: overrides.get(b, default) for b in blocks}


@pytest.mark.parametrize("arch, present, text, expected", [
    ("sd1", SD_BLOCKS, "", _expected(SD_BLOCKS)),
    ("sd1", SD_BLOCKS, "  ", _expected(SD_BLOCKS)),
    ("sd1", SD_BLOCKS, "IN:0.5, MID:1, OUT:0", {
        **_expected(SD_BLOCKS, 0.5), "BASE": 1.0, "MID": 1.0, **{b: 0.0 for b in SD_BLOCKS if b.startswith("OUT")}}),
    ("sd1", SD_BLOCKS, "OUT03-OUT05:0", _expected(SD_BLOCKS, OUT03=0.0, OUT04=0.0, OUT05=0.0)),
    ("sd1", SD_BLOCKS, "OUT00-OUT04:0.25", _expected(SD_BLOCKS, OUT03=0.25, OUT04=0.25)),
    ("sd1", SD_BLOCKS, "IN04:0.2", _expected(SD_BLOCKS, IN04=0.2)),
    ("sd1", SD_BLOCKS, "in4:0.2", _expected(SD_BLOCKS, IN04=0.2)),
    ("sd1", SD_BLOCKS, "out 03 - out 04 : 0", _expected(SD_BLOCKS, OUT03=0.0, OUT04=0.0)),
    ("sd1", SD_BLOCKS, "IN:0.5, IN04:1", {**_expected(SD_BLOCKS), **{b: 0.5 for b in SD_BLOCKS if b.startswith("IN")},
                                          "IN04": 1.0}),
    ("sd1", SD_BLOCKS, "IN04:1, IN:0.5", {**_expected(SD_BLOCKS), **{b: 0.5 for b in SD_BLOCKS if b.startswith("IN")}}),
    ("sd1", SD_BLOCKS, "BASE:0\nMID:-0.5", _expected(SD_BLOCKS, BASE=0.0, MID=-0.5)),
    ("sd1", SD_BLOCKS, "IN00:0, OUT00-OUT02:0", _expected(SD_BLOCKS)),  # not in this LoRA: nothing to scale
    ("sd1", SD_BLOCKS, "1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1",
     {**_expected(SD_BLOCKS, 0.0), **{b: 1.0 for b in SD_BLOCKS if b.startswith("OUT")}, "BASE": 1.0}),
    ("sd1", SD_BLOCKS, "0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7",
     dict(zip(SD_BLOCKS, [round(0.1 * i, 1) for i in range(1, 18)]))),
    ("sd1", ["BASE", "IN00", "IN03", "OUT00", "IN01"], "0.3,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1",
     {"BASE": 0.3, "IN00": 0.3, "IN03": 0.3, "OUT00": 0.3, "IN01": 0.0}),
    ("sd2", SD_BLOCKS, "no MID", _expected(SD_BLOCKS, MID=0.0)),
    ("sdxl", SDXL_BLOCKS, "0.5,1,1,1,1,0,1,1,1,1,1,1", _expected(SDXL_BLOCKS, BASE=0.5, MID=0.0)),
    ("sdxl", SDXL_BLOCKS + ["OUT06", "IN01"], "0.5,1,1,1,1,0,1,1,1,1,1,1",
     _expected(SDXL_BLOCKS + ["OUT06", "IN01"], BASE=0.5, MID=0.0, OUT06=0.5, IN01=0.5)),
    ("sdxl", SDXL_BLOCKS, "style only (OUT)",
     {**_expected(SDXL_BLOCKS), **{b: 0.0 for b in SDXL_BLOCKS if b.startswith("IN")}, "MID": 0.0}),
    ("sdxl", SDXL_BLOCKS, "STYLE ONLY (out)",
     {**_expected(SDXL_BLOCKS), **{b: 0.0 for b in SDXL_BLOCKS if b.startswith("IN")}, "MID": 0.0}),
    ("sdxl", SDXL_BLOCKS, "composition only (IN)",
     {**_expected(SDXL_BLOCKS), **{b: 0.0 for b in SDXL_BLOCKS if b.startswith("OUT")}, "MID": 0.0}),
    ("flux", FLUX_BLOCKS, "D:0.5, S03:0", _expected(FLUX_BLOCKS, D00=0.5, D01=0.5, D18=0.5, S03=0.0)),
    ("flux", FLUX_BLOCKS, "S00-S10:2", _expected(FLUX_BLOCKS, S00=2.0, S03=2.0)),
    ("flux", FLUX_BLOCKS, "double blocks only", _expected(FLUX_BLOCKS, S00=0.0, S03=0.0, S37=0.0)),
    ("flux", FLUX_BLOCKS, "all", _expected(FLUX_BLOCKS)),
    ("sd3", SD3_BLOCKS, "J00-J02:0", _expected(SD3_BLOCKS, J00=0.0, J01=0.0, J02=0.0)),
    ("other", ["BASE"], "BASE:0.7", {"BASE": 0.7}),
    ("sd1", [], "IN:0", {}),
])
def test_parse_block_weights(arch, present, text, expected):
    assert parse_block_weights(text, arch, present) == pytest.approx(expected)


@pytest.mark.parametrize("arch, present, text, fragment", [
    ("sd1", SD_BLOCKS, ",".join(["1"] * 16), "sd1 block vectors have 17 values (BASE, IN01"),
    ("sd2", SD_BLOCKS, ",".join(["1"] * 12), "have 17 values"),
    ("sdxl", SDXL_BLOCKS, ",".join(["1"] * 17), "sdxl block vectors have 12 values (BASE, IN04"),
    ("sdxl", SDXL_BLOCKS, "0.5", "have 12 values"),
    ("flux", FLUX_BLOCKS, ",".join(["1"] * 17), "for flux name the blocks, e.g. 'D:1, S:0.5'"),
    ("sd3", SD3_BLOCKS, "1,1", "for sd3 name the blocks"),
    ("sd1", SD_BLOCKS, "FOO:1", "'FOO' is not a block of sd1 models"),
    ("sd1", SD_BLOCKS, "D00:1", "'D00' is not a block of sd1 models"),
    ("flux", FLUX_BLOCKS, "MID:1", "'MID' is not a block of flux models; use BASE, D, S"),
    ("other", ["BASE"], "IN:1", "'IN' is not a block of other models; use BASE"),
    ("sd1", SD_BLOCKS, "IN04:abc", "'abc' is not a number"),
    ("sd1", SD_BLOCKS, "IN04:", "'' is not a number"),
    ("sd1", SD_BLOCKS, "IN04:nan", "'nan' is not a number"),
    ("sd1", SD_BLOCKS, "OUT:inf", "'inf' is not a number"),
    ("sd1", SD_BLOCKS, "1,0,R,0,0,0,0,0,1,1,1,1,1,1,1,1,1", "block weight 'R': write BLOCK:VALUE"),
    ("sd1", SD_BLOCKS, "IN04", "write BLOCK:VALUE (e.g. 'IN04:0.5') or a vector of 17 numbers"),
    ("sd1", SD_BLOCKS, "IN04:1, 0.5", "block weight '0.5': write BLOCK:VALUE"),
    ("sd1", SD_BLOCKS, "OUT05-OUT03:0", "a range looks like 'OUT03-OUT05'"),
    ("sd1", SD_BLOCKS, "OUT03-IN05:0", "a range looks like"),
    ("sd1", SD_BLOCKS, "MID-OUT05:0", "a range looks like"),
    ("sd1", SD_BLOCKS, "double blocks only", "'double blocks only' is not for sd1 models"),
    ("sd1", ["BASE", "D00"], "", "present block 'D00' is not a block of sd1 models"),
    ("flux", ["MID"], "", "present block 'MID' is not a block of flux models"),
    ("sd4", ["BASE"], "", "unknown architecture 'sd4'"),
])
def test_parse_block_weights_errors(arch, present, text, fragment):
    with pytest.raises(ValueError) as info:
        parse_block_weights(text, arch, present)
    assert fragment in str(info.value)


@pytest.mark.parametrize("arch, names", [
    ("sd1", ["all", "style only (OUT)", "composition only (IN)", "no MID"]),
    ("sdxl", ["all", "style only (OUT)", "composition only (IN)", "no MID"]),
    ("flux", ["all", "double blocks only", "single blocks only"]),
    ("flux2", ["all", "double blocks only", "single blocks only"]),
    ("sd3", ["all"]),
    ("other", ["all"]),
    ("zimage", ["all"]),
])
def test_presets_for(arch, names):
    assert presets_for(arch) == names


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_parses_for_its_architectures(name):
    present = {"sd1": SD_BLOCKS, "sd2": SD_BLOCKS, "sdxl": SDXL_BLOCKS, "sd3": SD3_BLOCKS,
               "flux": FLUX_BLOCKS, "flux2": FLUX_BLOCKS, "other": ["BASE"], "zimage": ZIMAGE_BLOCKS,
                   "qwen_image": QWEN_IMAGE_BLOCKS}
    present["wan"] = ["BASE", "B00", "B01", "B39"]
    for arch in PRESETS[name].architectures:
        weights = parse_block_weights(name, arch, present[arch])
        assert set(weights) == set(present[arch])


@pytest.mark.parametrize("arch, length", [("sd1", 17), ("sd2", 17), ("sdxl", 12)])
def test_vector_lengths_follow_inspire(arch, length):
    assert len(VECTOR_BLOCKS[arch]) == length


def test_weights_by_key():
    keys = [
        "diffusion_model.double_blocks.0.img_attn.qkv.weight",
        ("diffusion_model.single_blocks.3.linear1.weight", (0, 0, 9216)),
        "diffusion_model.single_blocks.3.linear2.weight",
        "clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight",
    ]
    assert weights_by_key(keys, "flux", "S:0.5, BASE:0") == {
        keys[0]: 1.0, keys[1]: 0.5, keys[2]: 0.5, keys[3]: 0.0}


@pytest.mark.parametrize("text, fragment", [
    ("IN04:1e6", "block weight 'IN04:1e6': 1e+06 is outside the valid range -10 to 10"),
    ("OUT:-11", "-11 is outside the valid range -10 to 10"),
    ("IN04:inf", "'inf' is not a number; block weights are numbers from -10 to 10"),
    (",".join(["1"] * 16 + ["20"]), "block weight '20': 20 is outside the valid range -10 to 10"),
])
def test_block_weights_out_of_range_are_refused_with_the_range(text, fragment):
    with pytest.raises(ValueError) as err:
        parse_block_weights(text, "sd1", SD_BLOCKS)
    assert fragment in str(err.value)


MODEL_BLOCKS = ["BASE", "MID"] + [f"IN{i:02d}" for i in range(12)] + [f"OUT{i:02d}" for i in range(12)]


@pytest.mark.parametrize("text, warnings", [
    ("IN04:0.5, OUT:0", []),
    ("IN99:0", ["block weight 'IN99:0' changes nothing: this model has no block IN99 "
                "(its blocks: BASE, IN00-IN11, MID, OUT00-OUT11)"]),
    ("OUT12:0, IN03:0", ["block weight 'OUT12:0' changes nothing: this model has no block OUT12 "
                         "(its blocks: BASE, IN00-IN11, MID, OUT00-OUT11)",
                         "block weight 'IN03:0' changes nothing: the LoRA has no layers in IN03"]),
    (",".join(["0"] * 17), []),
])
def test_idle_items_name_blocks_the_model_or_the_lora_lacks(text, warnings):
    assert idle_items(text, "sd1", SD_BLOCKS, MODEL_BLOCKS) == warnings
