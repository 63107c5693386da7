"""peft adapter tensors -> the kohya / LyCORIS tensor names every common tool reads.

One table per algorithm. peft and the kohya family agree on the math for LoRA and LoHa
(delta = up·down · alpha/rank, and (w1a·w1b)⊙(w2a·w2b) · alpha/rank). For LoKr, readers apply
alpha/rank only when a factor is decomposed, so an undecomposed pair gets peft's scale folded
into w2 and alpha = rank (scale 1 for every reader).

DoRA's magnitude is written as `dora_scale` of shape (out, 1, ...), one norm per output row: the
axis peft trains it on, so it cannot be re-oriented without retraining. Readers: ComfyUI (both
orientations, told apart by shape), LyCORIS >= 2.2 (`wd_on_out`, its default) and Forge's
ComfyUI-derived patcher read it right; A1111's built-in Lora extension normalises per input
column (LyCORIS's older convention) and broadcasts an (out, 1) scale over it without an error,
so DoRA files render wrongly there (plain LoRA, LoHa and LoKr are unaffected). kohya's
networks.lora has no DoRA.
"""

import torch

from .adapters import peft_name

_LORA_NAMES = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight",
               "lora_magnitude_vector": "dora_scale"}
_LYCORIS_NAMES = {name: name for name in (
    "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
    "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")}


def kohya_tensors(adapter_state, spec, base_weights=None, dtype=torch.float16):
    """{kohya module name: {peft state-dict name: tensor}} -> flat {"<name>.<suffix>": tensor}.

    `base_weights` (name -> real weight) gives DoRA's magnitude its layer shape.
    """
    out = {}
    for name, tensors in adapter_state.items():
        table = _LORA_NAMES if spec.algorithm in ("lora", "dora") else _LYCORIS_NAMES
        tensors = {peft_name(pname): value for pname, value in tensors.items()}
        unknown = sorted(set(tensors) - set(table))
        if unknown:
            raise ValueError(f"cannot export adapter tensors {unknown} of {name} for {spec.algorithm}")
        alpha = float(spec.alpha)
        renamed = {table[pname]: value.detach().float() for pname, value in tensors.items()}
        if "dora_scale" in renamed and base_weights is not None:
            weight = base_weights[name]
            renamed["dora_scale"] = renamed["dora_scale"].reshape(weight.shape[0], *([1] * (weight.dim() - 1)))
        if spec.algorithm == "lokr" and not _lokr_decomposed(renamed):
            renamed["lokr_w2"] = renamed["lokr_w2"] * (alpha / spec.rank)
            alpha = float(spec.rank)
        for suffix, value in renamed.items():
            out[f"{name}.{suffix}"] = value.to(dtype).contiguous()
        out[f"{name}.alpha"] = torch.tensor(alpha, dtype=dtype)
    return out


def _lokr_decomposed(renamed):
    return any(key in renamed for key in ("lokr_w1_a", "lokr_w2_a"))
