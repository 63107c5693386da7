"""LoRA files: kohya names for ComfyUI module paths (`keys`), training metadata (`metadata`),
safe reading and atomic writing of .safetensors (`io`), block weights (`blocks`), the base model a
file was made for (`detect`), LORA_STACK lists (`stack`) and applying LoRAs to a ComfyUI model
with a match report (`apply`, which reaches ComfyUI only through comfy_bridge). Nothing here
imports ComfyUI."""
