"""LookDev's library: datasets, captions, LoRA training and saving, storyboard rendering helpers.

Tensors, configs and callbacks in, results out. Nothing here imports ComfyUI except
`comfy_bridge`, which imports it lazily; everything else runs on plain torch.
"""
