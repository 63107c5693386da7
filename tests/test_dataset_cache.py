import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from dataset_files import write_image
from lookdev.trainer.dataset.cache import FORMAT_VERSION, LatentCache, cache_key
from lookdev.trainer.dataset.dataset import DatasetConfig, build_dataset


class CountingEncoder:
    """Stands in for a VAE: 8x downsampling to 4 channels, recording every call."""

    def __init__(self):
        self.batches = []

    def __call__(self, images):
        self.batches.append((tuple(images.shape), images.shape[0]))
        pixels = images.permute(0, 3, 1, 2)
        pooled = F.avg_pool2d(pixels, 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)

    @property
    def encoded(self):
        return sum(count for _, count in self.batches)


def make_refs(folder, sizes=((128, 128), (96, 96), (200, 100), (100, 200), (150, 150))):
    for index, size in enumerate(sizes):
        write_image(folder / f"ref_{index}.png", size, seed=index)
    return folder


def dataset(folder, resolution=128):
    return build_dataset(DatasetConfig(folder=str(folder), resolution=resolution, trigger="x"))


def test_second_run_encodes_nothing(tmp_path):
    samples = dataset(make_refs(tmp_path / "refs")).samples
    first_encoder, second_encoder = CountingEncoder(), CountingEncoder()
    first_cache = LatentCache(tmp_path / "cache")
    first = first_cache.latents_for(samples, "vae-a", first_encoder)
    assert first_encoder.encoded == 5
    assert (first_cache.stats.hits, first_cache.stats.misses) == (0, 5)
    second_cache = LatentCache(tmp_path / "cache")
    second = second_cache.latents_for(dataset(tmp_path / "refs").samples, "vae-a", second_encoder)
    assert second_encoder.batches == []
    assert (second_cache.stats.hits, second_cache.stats.misses) == (5, 0)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    for sample, latent in zip(samples, second):
        width, height = sample.bucket
        assert latent.shape == (4, height // 8, width // 8)


def test_misses_are_batched_by_bucket(tmp_path):
    samples = dataset(make_refs(tmp_path / "refs")).samples
    encoder = CountingEncoder()
    LatentCache(tmp_path / "cache").latents_for(samples, "vae", encoder, batch_size=2)
    assert all(count <= 2 for _, count in encoder.batches)
    assert len(encoder.batches) == 4  # (128, 128) x3 in two batches, (192, 64), (64, 192)
    per_bucket = {}
    for shape, count in encoder.batches:
        per_bucket[shape[1:3]] = per_bucket.get(shape[1:3], 0) + count
    expected = {}
    for sample in samples:
        key = (sample.bucket[1], sample.bucket[0])
        expected[key] = expected.get(key, 0) + 1
    assert per_bucket == expected


def test_progress_counts_the_images_to_encode(tmp_path):
    samples = dataset(make_refs(tmp_path / "refs")).samples
    seen = []
    cache = LatentCache(tmp_path / "cache")
    cache.latents_for(samples, "vae", CountingEncoder(), batch_size=2, on_progress=lambda *p: seen.append(p))
    # One call per batch (4, as in the test above), counting up to the 5 images encoded.
    assert len(seen) == 4 and seen[-1] == (5, 5) and all(total == 5 for _, total in seen)
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})
    seen.clear()
    cache.latents_for(samples, "vae", CountingEncoder(), on_progress=lambda *p: seen.append(p))
    assert seen == []  # all from the cache: nothing to encode


def test_duplicate_samples_are_encoded_once(tmp_path):
    write_image(tmp_path / "refs" / "a.png", seed=1)
    write_image(tmp_path / "refs" / "b.png", seed=1)
    samples = dataset(tmp_path / "refs").samples
    encoder = CountingEncoder()
    latents = LatentCache(tmp_path / "cache").latents_for(samples, "vae", encoder)
    assert encoder.encoded == 1 and torch.equal(latents[0], latents[1])


@pytest.mark.parametrize("change", ["vae", "resolution", "bytes"])
def test_changes_cause_misses(tmp_path, change):
    refs = make_refs(tmp_path / "refs", sizes=((128, 128), (200, 100)))
    cache = LatentCache(tmp_path / "cache")
    cache.latents_for(dataset(refs).samples, "vae-a", CountingEncoder())
    vae, resolution = "vae-a", 128
    if change == "vae":
        vae = "vae-b"
    elif change == "resolution":
        resolution = 256
    else:
        write_image(refs / "ref_0.png", (128, 128), seed=99)
    encoder = CountingEncoder()
    LatentCache(tmp_path / "cache").latents_for(dataset(refs, resolution).samples, vae, encoder)
    assert encoder.encoded == (1 if change == "bytes" else 2)


def test_key_depends_on_every_part():
    sample = type("S", (), {"content_hash": "ab", "bucket": (64, 128)})()
    base = cache_key(sample, "vae")
    assert cache_key(sample, "vae") == base
    assert cache_key(sample, "vae2") != base
    sample.bucket = (128, 64)
    assert cache_key(sample, "vae") != base


def entry_paths(folder):
    return sorted(folder.glob("*.safetensors"))


def corrupt_truncate(path):
    path.write_bytes(path.read_bytes()[:-7])


def corrupt_flip_data(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def corrupt_garbage(path):
    path.write_bytes(b"not a safetensors file at all")


@pytest.mark.parametrize("corrupt", [corrupt_truncate, corrupt_flip_data, corrupt_garbage])
def test_damaged_entries_are_reencoded_not_served(tmp_path, corrupt):
    samples = dataset(make_refs(tmp_path / "refs", sizes=((128, 128), (200, 100)))).samples
    good = LatentCache(tmp_path / "cache").latents_for(samples, "vae", CountingEncoder())
    damaged = entry_paths(tmp_path / "cache")[0]
    corrupt(damaged)
    encoder = CountingEncoder()
    cache = LatentCache(tmp_path / "cache")
    again = cache.latents_for(samples, "vae", encoder)
    assert encoder.encoded == 1
    assert (cache.stats.hits, cache.stats.misses, cache.stats.rejected) == (1, 1, 1)
    assert all(torch.equal(a, b) for a, b in zip(good, again))
    repaired = LatentCache(tmp_path / "cache")
    repaired.latents_for(samples, "vae", CountingEncoder())
    assert (repaired.stats.hits, repaired.stats.rejected) == (2, 0)


def test_an_entry_under_the_wrong_name_is_rejected(tmp_path):
    samples = dataset(make_refs(tmp_path / "refs", sizes=((128, 128), (200, 100)))).samples
    LatentCache(tmp_path / "cache").latents_for(samples, "vae", CountingEncoder())
    first, second = entry_paths(tmp_path / "cache")
    second.write_bytes(first.read_bytes())
    cache = LatentCache(tmp_path / "cache")
    encoder = CountingEncoder()
    cache.latents_for(samples, "vae", encoder)
    assert encoder.encoded == 1 and cache.stats.rejected == 1


def test_entries_are_safetensors_with_key_and_shape(tmp_path):
    samples = dataset(make_refs(tmp_path / "refs", sizes=((200, 100),))).samples
    LatentCache(tmp_path / "cache").latents_for(samples, "vae", CountingEncoder())
    (path,) = entry_paths(tmp_path / "cache")
    key = cache_key(samples[0], "vae")
    assert path.name == f"{key}.safetensors"
    with safe_open(path, "pt") as entry:
        meta = entry.metadata()
        assert list(entry.keys()) == ["latent"]
    assert (meta["key"], meta["shape"], meta["format"]) == (key, "4,8,24", FORMAT_VERSION)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [path.name]


@pytest.mark.parametrize("output, words", [
    (lambda images: images, "returned (2, 128, 128, 3)"),
    (lambda images: torch.zeros(1, 4, 16, 16), "expected a tensor [2, C, h, w]"),
    (lambda images: None, "NoneType"),
])
def test_bad_encoder_output_is_named(tmp_path, output, words):
    samples = dataset(make_refs(tmp_path / "refs", sizes=((128, 128), (130, 130)))).samples
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        LatentCache(tmp_path / "cache").latents_for(samples, "vae", output)


@pytest.mark.parametrize("kwargs, words", [({"vae_id": ""}, "vae_id"),
                                           ({"vae_id": None}, "vae_id"),
                                           ({"batch_size": 0}, "batch_size")])
def test_bad_arguments_are_named(tmp_path, kwargs, words):
    args = {"vae_id": "vae", "encode": CountingEncoder(), **kwargs}
    with pytest.raises(ValueError, match=words):
        LatentCache(tmp_path / "cache").latents_for([], **args)


def test_half_precision_latents_round_trip(tmp_path):
    samples = dataset(make_refs(tmp_path / "refs", sizes=((128, 128),))).samples
    half = lambda images: CountingEncoder()(images).to(torch.bfloat16)  # noqa: E731
    first = LatentCache(tmp_path / "cache").latents_for(samples, "vae", half)
    second = LatentCache(tmp_path / "cache").latents_for(samples, "vae", CountingEncoder())
    assert second[0].dtype == torch.bfloat16 and torch.equal(first[0], second[0])

