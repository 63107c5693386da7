"""What each training micro-step sees: which examples, which caption, which noise.

All randomness is a pure function of (seed, micro-step): the batch order of an epoch, the
caption variant, the timesteps and the noise. An interrupted run that resumes at step k draws
exactly what the uninterrupted run drew, so the two end with bit-identical weights, and no
random-generator state needs saving.
"""

import hashlib
import random
from dataclasses import dataclass

import torch


@dataclass
class Example:
    """One training image, prepared: its latent in the model's space and its caption pool."""

    latent: torch.Tensor  # [C, h, w]
    captions: tuple  # caption variants (e.g. shuffles); index 0 is the caption as written
    dropped_caption: str  # what caption dropout trains with (usually the trigger word alone)
    repeats: int = 1

    @property
    def bucket(self):
        return tuple(self.latent.shape[-2:])


def derive_seed(seed, *keys):
    """A 63-bit seed from `seed` and any keys; stable across runs, processes and platforms."""
    text = ":".join(str(k) for k in (seed, *keys))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def step_generator(seed, micro_step):
    return torch.Generator().manual_seed(derive_seed(seed, "noise", micro_step))


class BatchPlan:
    """Bucket-aware batches: each epoch visits every example `repeats` times, in a shuffled
    order; a batch never mixes latent sizes, so a small bucket gives a smaller batch."""

    def __init__(self, examples, batch_size, seed):
        if not examples:
            raise ValueError("the dataset has no images to train on")
        self.examples = examples
        self.batch_size = batch_size
        self.seed = seed
        self._epoch_cache = (None, None)
        self.batches_per_epoch = len(self._epoch_batches(0))

    def _epoch_batches(self, epoch):
        if self._epoch_cache[0] == epoch:
            return self._epoch_cache[1]
        rng = random.Random(derive_seed(self.seed, "epoch", epoch))
        visits = [i for i, ex in enumerate(self.examples) for _ in range(max(1, ex.repeats))]
        rng.shuffle(visits)
        by_bucket = {}
        for index in visits:
            by_bucket.setdefault(self.examples[index].bucket, []).append(index)
        batches = [group[i:i + self.batch_size] for group in by_bucket.values()
                   for i in range(0, len(group), self.batch_size)]
        rng.shuffle(batches)
        self._epoch_cache = (epoch, batches)
        return batches

    def batch(self, micro_step):
        batches = self._epoch_batches(micro_step // self.batches_per_epoch)
        return batches[micro_step % self.batches_per_epoch]


def caption_for(example, index, seed, micro_step, dropout):
    rng = random.Random(derive_seed(seed, "caption", micro_step, index))
    if dropout > 0 and rng.random() < dropout:
        return example.dropped_caption
    return example.captions[rng.randrange(len(example.captions))]


def all_captions(examples):
    """Every caption text any step can draw, in a stable order (for encoding once up front)."""
    seen = {}
    for ex in examples:
        for text in (*ex.captions, ex.dropped_caption):
            seen.setdefault(text, None)
    return list(seen)
