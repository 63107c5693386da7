"""LoRA files: kohya names for ComfyUI module paths (`keys`), training metadata (`metadata`),
safe reading and atomic writing of .safetensors (`io`), and block weights for the applier
(`blocks`). Pure torch + safetensors; nothing here imports ComfyUI."""
