"""On-disk latent cache: each training image is VAE-encoded once, then read back on later runs.

An entry's key is the sha256 of (the sample's cropped-pixel hash, its bucket, the VAE identity,
FORMAT_VERSION), so a new crop, resolution, image or VAE is simply a miss. Entries are
safetensors files (never pickles) written atomically; the key, shape and a checksum of the data
are in the metadata and checked on every read, so a stale, truncated or damaged entry is
re-encoded and overwritten, never served.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..fileio import write_bytes

FORMAT_VERSION = "1"
_TENSOR = "latent"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    rejected: int = 0  # entries found but unusable (damaged, mismatched); also counted as misses


class LatentCache:
    """Latents for dataset samples, kept as `<key>.safetensors` files in `folder`."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.stats = CacheStats()

    def latents_for(self, samples, vae_id, encode, batch_size=4, on_progress=None):
        """One latent per sample, in order, as CPU tensors [C, h, w].

        vae_id: a string that changes whenever the VAE's weights do (e.g. its file hash).
        encode: callable taking float32 images [B, H, W, 3] in 0..1 and returning latents
        [B, C, h, w]; only called for samples not in the cache, with same-bucket samples
        batched (at most `batch_size` at a time). on_progress(done, total): after each encoded
        batch, with the count of images to encode.
        """
        if not isinstance(vae_id, str) or not vae_id.strip():
            raise ValueError(f"vae_id must be a non-empty string naming the VAE, got {vae_id!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        keys = [cache_key(sample, vae_id) for sample in samples]
        found = {}
        pending = {}  # key -> sample, for each distinct missing key
        for key, sample in zip(keys, samples):
            if key in found or key in pending:
                continue
            latent = self._read(key)
            if latent is None:
                pending[key] = sample
            else:
                found[key] = latent
        self.stats.hits += len(keys) - len(pending)
        self.stats.misses += len(pending)
        found.update(self._encode_missing(pending, encode, batch_size, on_progress))
        return [found[key] for key in keys]

    def _encode_missing(self, pending, encode, batch_size, on_progress=None):
        by_bucket = {}
        for key, sample in pending.items():
            by_bucket.setdefault(tuple(sample.bucket), []).append((key, sample))
        encoded = {}
        for bucket in sorted(by_bucket):
            group = by_bucket[bucket]
            for start in range(0, len(group), batch_size):
                chunk = group[start:start + batch_size]
                batch = torch.stack([sample.image for _, sample in chunk])
                latents = _checked_output(encode(batch), len(chunk), bucket)
                for (key, _), latent in zip(chunk, latents):
                    encoded[key] = self._write(key, latent)
                if on_progress is not None:
                    on_progress(len(encoded), len(pending))
        return encoded

    def _path(self, key):
        return self.folder / f"{key}.safetensors"

    def _read(self, key):
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(path, "pt") as entry:
                meta = entry.metadata() or {}
                latent = entry.get_tensor(_TENSOR)
        except (OSError, SafetensorError):
            self.stats.rejected += 1
            return None
        expected = {"key": key, "format": FORMAT_VERSION, "shape": _shape_text(latent),
                    "sha256": _digest(latent)}
        if any(meta.get(name) != value for name, value in expected.items()):
            self.stats.rejected += 1
            return None
        return latent

    def _write(self, key, latent):
        latent = latent.detach().to("cpu").contiguous().clone()
        meta = {"key": key, "format": FORMAT_VERSION, "shape": _shape_text(latent),
                "sha256": _digest(latent)}
        write_bytes(self._path(key), save({_TENSOR: latent}, metadata=meta))
        return latent


def cache_key(sample, vae_id):
    """The cache key of a sample's latent under a given VAE."""
    fields = [sample.content_hash, list(sample.bucket), vae_id, FORMAT_VERSION]
    return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()


def _checked_output(latents, count, bucket):
    # [count, C, h, w], or a video VAE's [count, C, 1, h, w] (each image a one-frame video)
    if not (isinstance(latents, torch.Tensor) and (latents.dim() == 4 or (latents.dim() == 5 and latents.shape[2] == 1))
            and latents.shape[0] == count and _downscaled(latents.shape[-2:], bucket)):
        got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ValueError(f"the VAE encode function returned {got} for {count} images of "
                         f"{bucket[0]}x{bucket[1]}; expected a tensor [{count}, C, h, w] (a video VAE's "
                         f"[{count}, C, 1, h, w]) with "
                         "h and w the image size divided by the VAE's factor")
    return latents.unbind(0)


def _downscaled(latent_hw, bucket):
    (h, w), (width, height) = latent_hw, bucket
    return h > 0 and w > 0 and height % h == 0 and width % w == 0 and height // h == width // w


def _shape_text(tensor):
    return ",".join(str(side) for side in tensor.shape)


def _digest(tensor):
    return hashlib.sha256(tensor.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()
