"""LookDev's dataset library: a folder (or ComfyUI IMAGE batches) of style references in,
bucketed, cropped, captioned samples out, plus an on-disk latent cache. No ComfyUI imports.

Modules: images (decode any file to RGB), buckets (aspect-ratio buckets), scan (find images,
captions, repeats), captions (pure caption text functions), dataset (build and report), cache
(latent cache).
"""
