"""One training run from ComfyUI objects to a saved LoRA: the trainer node's whole job.

Prepare latents (cached) and caption variants, resume if asked, train adapters on the model
ComfyUI loaded, save the kohya-format file, and hand back the model with the LoRA applied.
"""

import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import comfy_bridge as bridge
from ..dataset.cache import LatentCache
from ..dataset.captions import drop_caption, plain_caption, shuffle_tags, split_tags
from ..fileio import remove_stale_temps
from ..lora.apply import ApplyOptions, apply_lora
from ..lora.io import LoraFile, read_lora, save_lora
from ..lora.keys import UNetLayout, kohya_names
from ..lora.metadata import TrainingFacts, build_metadata
from ..style_metric import validation_style_distance
from . import state
from .adapters import AdapterSet
from .data import Example, derive_seed
from .export import kohya_tensors
from .loop import TrainHooks, train
from .plot import loss_curve_image
from .registries import DTYPES
from .targets import select_targets

log = logging.getLogger("LookDev")
VERSION = "0.1.0"
KEEP_STATES = 2  # resumable checkpoints kept per LoRA name; each holds optimizer state (~3x the LoRA)


@dataclass
class RunPaths:
    lora: Path  # the final LoRA, in ComfyUI's loras folder
    work: Path  # intermediate LoRAs and checkpoints
    cache: Path  # the latent cache

    @classmethod
    def for_name(cls, name):
        """The paths for LoRA `name`; ValueError if a symlink would take a write out of ComfyUI's
        output or loras folder (`name` itself is a plain file name: TrainConfig.validate)."""
        output, loras = Path(bridge.folder("output")), Path(bridge.model_folders("loras")[0])
        paths = cls(lora=loras / f"{name}.safetensors", work=output / "lookdev" / name,
                    cache=output / "lookdev" / "cache" / "latents")
        for path, root, what in ((paths.work, output, "output"), (paths.cache, output, "output"),
                                 (paths.lora, loras, "loras")):
            target = path.resolve()
            if not target.is_relative_to(root.resolve()):
                raise ValueError(f"cannot save to {path}: it leads to {target}, outside ComfyUI's {what} folder "
                                 f"{root} (a symlink?). LookDev writes only inside it: remove the link or pick "
                                 "another name.")
        return paths

    def remove_stale_temps(self):
        """Remove the partial files a killed run left (final names never hold partial files)."""
        return [*remove_stale_temps(self.checkpoints), *remove_stale_temps(self.work),
                *remove_stale_temps(self.cache), *remove_stale_temps(self.lora.parent, self.lora.name)]

    @property
    def checkpoints(self):
        return self.work / "checkpoints"


@dataclass
class RunOutputs:
    model: object  # MODEL with the LoRA applied
    lora: LoraFile
    path: Path
    loss_image: torch.Tensor
    previews: list  # [1, H, W, 3] validation renders of the final LoRA
    report: str


def prepare_examples(dataset, latents, config):
    """Examples with caption variants: shuffles of the free tags, the fixed tags kept first."""
    examples = []
    for index, (sample, latent) in enumerate(zip(dataset.samples, latents)):
        caption = sample.caption
        variants = {plain_caption(caption): None}
        if config.shuffle_captions and len(split_tags(plain_caption(caption))) > 1:
            for variant in range(config.caption_variants - 1):
                rng = random.Random(derive_seed(config.seed, "variant", index, variant))
                variants.setdefault(shuffle_tags(caption, rng, keep_tokens=config.keep_tokens), None)
        dropped = drop_caption(caption, random.Random(0), 1.0, keep_tokens=config.keep_tokens)
        examples.append(Example(latent=latent, captions=tuple(variants), dropped_caption=dropped,
                                repeats=sample.repeats))
    return examples


def _resume_snapshot(config, paths, network, notes):
    """The newest readable checkpoint's Snapshot, or None. Unreadable files are skipped with a note."""
    if not config.resume:
        return None
    found, skipped = state.scan_checkpoints(paths.checkpoints)
    notes += [f"skipped {path.name}: {why}" for path, why in skipped]
    if found and found[0][1]["network"] != network:
        path, header = found[0]
        raise ValueError(
            f"cannot resume from {path}: it was trained with {header['network']}, this run asks for "
            f"{network}. Use another name, turn resume off, or match those settings.")
    for path, header in found:
        try:
            snapshot = state.load_checkpoint(path)
        except ValueError as exc:
            notes.append(f"skipped {path.name}: {exc}")
            continue
        log.info("LookDev: resuming %s from step %d (%s)", config.name, header["step"], path)
        return snapshot
    return None


class _NodeHooks(TrainHooks):
    """Progress bar, websocket events, Cancel, checkpoints and validation renders."""

    def __init__(self, run, node_id, prompt_id):
        self.run, self.node_id, self.prompt_id = run, node_id, prompt_id
        self.bar = bridge.progress_bar(run.config.steps)

    def check_cancel(self):
        bridge.check_cancel()

    def on_step(self, report):
        self.bar.update_absolute(report.step, report.total)
        bridge.send_event("lookdev.train.progress", {
            "node": self.node_id, "prompt_id": self.prompt_id, "name": self.run.config.name,
            "step": report.step, "total": report.total, "loss": report.loss, "loss_smooth": report.loss_smooth,
            "lr": report.lr, "elapsed_s": report.elapsed, "eta_s": report.eta, "resumed_from": self.run.start})

    def on_checkpoint(self, snapshot):
        self.run.save_checkpoint(snapshot)

    def on_validate(self, step):
        images = self.run.render_validation()
        distance = validation_style_distance(images, self.run.dataset.samples)
        if distance is not None:
            self.run.style_distances.append((step, distance))
        refs = [bridge.save_temp_image(image, f"lookdev_{self.run.config.name}_step{step:06d}") for image in images]
        if images:
            # ComfyUI's own node preview, shown even without LookDev's web extension.
            self.bar.update_absolute(step, self.run.config.steps, bridge.preview(images[0]))
        if refs:
            bridge.send_event("lookdev.train.preview", {
                "node": self.node_id, "prompt_id": self.prompt_id, "step": step, "images": refs,
                "prompts": list(self.run.config.validation_prompts), "style_distance": distance})


class TrainingRun:
    def __init__(self, config, model, clip, vae, dataset):
        self.config = config.validate()
        if len(dataset) == 0:
            raise ValueError("the dataset has no images")
        self.model, self.clip, self.vae, self.dataset = model, clip, vae, dataset
        self.arch = bridge.architecture(model)
        self.paths = RunPaths.for_name(config.name)
        self.network = {**config.network_signature(), "architecture": self.arch}
        self.started_at = time.time()
        self.start = 0
        self.notes = []  # lines for the report: checkpoints skipped, leftovers removed
        self.style_distances = []  # (step, style distance of the validation renders to the dataset)
        self.denoiser = self.adapters = None

    # -- stages ----------------------------------------------------------------------------

    def latents(self):
        cache = LatentCache(self.paths.cache)
        latents = cache.latents_for(self.dataset.samples, bridge.vae_identity(self.vae),
                                    lambda images: bridge.encode_images(self.vae, images))
        self.cache_stats = cache.stats
        return latents

    def layer_names(self):
        paths = select_targets(bridge.named_layers(self.model), self.arch, self.config.targets)
        layout = None
        if self.arch in ("sd1", "sd2"):
            layout = UNetLayout.from_unet_config(bridge.unet_config(self.model))
        return kohya_names(paths, self.arch, layout)

    def execute(self, node_id=None, prompt_id=None):
        config = self.config
        self.notes += [f"removed {path.name}, a partial file of an interrupted run"
                       for path in self.paths.remove_stale_temps()]
        raw_latents = self.latents()
        compute_dtype = bridge.resolve_dtype(config.dtype, DTYPES)
        with bridge.training_session(self.model, self.clip, compute_dtype, config.gradient_checkpointing) as den:
            # Loaded inside the session: tensors made under the executor's inference mode
            # could not be updated by the optimizer.
            resume = _resume_snapshot(config, self.paths, self.network, self.notes)
            for note in self.notes:
                log.warning("LookDev: %s", note)
            self.start = resume.step if resume else 0
            hooks = _NodeHooks(self, node_id, prompt_id)
            self.denoiser = den
            examples = prepare_examples(self.dataset, [den.to_model_space(l.to(den.device)) for l in raw_latents], config)
            names = self.layer_names()
            modules = dict(bridge.named_layers(self.model))
            self.adapters = AdapterSet({name: modules[path] for path, name in names.items()},
                                       config.adapter_spec(), seed=config.seed)
            self.adapters.to_training(den.device)
            self._base_weights = {name: modules[path].weight for path, name in names.items()}
            with self.adapters.attach():
                self.adapters.train()
                result = train(config, den, self.adapters, examples, hooks=hooks, resume=resume,
                               network=self.network)
                self.adapters.eval()
                previews = self.render_validation()
        self.save_checkpoint(result.snapshot, intermediate=False)
        lora = self.save_lora(result)
        # The same path as LookDev Apply LoRA, so the output MODEL equals applying the file.
        model = apply_lora(self.model, None, lora, ApplyOptions(strength_model=1.0, strength_clip=0.0)).model
        bridge.send_event("lookdev.train.done", {
            "node": node_id, "prompt_id": prompt_id, "name": config.name, "path": str(lora.path),
            "steps": config.steps, "final_loss": result.losses[-1] if result.losses else None,
            "seconds": result.seconds})
        return RunOutputs(model=model, lora=lora, path=lora.path,
                          loss_image=loss_curve_image(result.losses, result.snapshot.lrs,
                                                      f"{config.name} - {config.steps} steps"),
                          previews=previews, report=self.report(result, examples))

    # -- outputs -----------------------------------------------------------------------------

    def kohya_state(self, adapter_state):
        return kohya_tensors(adapter_state, self.config.adapter_spec(), self._base_weights, dtype=torch.float32)

    def facts(self, steps):
        config = self.config
        algo = config.algorithm
        widths = sorted(self.dataset.buckets(), key=lambda wh: -wh[0] * wh[1])
        tags = {}
        for caption in self.dataset.captions():
            for tag in split_tags(plain_caption(caption)):
                tags[tag] = tags.get(tag, 0) + 1
        return TrainingFacts(
            arch=self.arch, output_name=config.name, lookdev_version=VERSION, network_dim=config.rank,
            network_alpha=config.alpha, steps=steps, max_train_steps=config.steps,
            learning_rate=config.learning_rate, training_started_at=self.started_at,
            training_finished_at=time.time(),
            network_module="networks.lora" if algo == "lora" else "lycoris.kohya",
            network_args={} if algo == "lora" else {"algo": "lora" if algo == "dora" else algo,
                                                    **({"dora_wd": "true"} if algo == "dora" else {})},
            optimizer=config.optimizer, lr_scheduler=config.schedule, lr_warmup_steps=config.warmup_steps,
            seed=config.seed, resolution=widths[0] if widths else (self.dataset.resolution,) * 2,
            num_train_images=len(self.dataset), batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum, gradient_checkpointing=config.gradient_checkpointing,
            mixed_precision={"fp32": "no", "auto": "no"}.get(config.dtype, config.dtype),
            noise_offset=config.noise_offset or None, min_snr_gamma=config.min_snr_gamma or None,
            caption_dropout_rate=config.caption_dropout, keep_tokens=config.keep_tokens,
            shuffle_caption=config.shuffle_captions, v_prediction=self.denoiser.kind == "v",
            tag_frequency={self.dataset.source: tags},
            dataset_dirs={self.dataset.source: {"n_repeats": max((s.repeats for s in self.dataset.samples), default=1),
                                                "img_count": len(self.dataset)}},
            trigger_words=[w for w in (config.trigger or self.dataset.trigger).split(",") if w.strip()],
            config=config.to_dict())

    def save_lora(self, result, path=None):
        tensors = self.kohya_state(result.adapter_state)
        saved = save_lora(path or self.paths.lora, tensors, build_metadata(self.facts(result.snapshot.step)),
                          dtype=self.config.save_dtype)
        return read_lora(saved)  # the in-memory LoRA is exactly the file's tensors

    def save_checkpoint(self, snapshot, intermediate=True):
        name = f"{self.config.name}-step{snapshot.step:06d}"
        state.save_checkpoint(self.paths.checkpoints / f"{name}{state.SUFFIX}", snapshot)
        if intermediate:
            tensors = self.kohya_state(snapshot.adapter_state)
            save_lora(self.paths.work / f"{name}.safetensors", tensors,
                      build_metadata(self.facts(snapshot.step)), dtype=self.config.save_dtype)
        self._prune_states()

    def _prune_states(self):
        found = []
        for path in self.paths.checkpoints.glob(f"*{state.SUFFIX}"):
            header = state.read_header(path)
            if header is not None and header["network"] == self.network:
                found.append((header["saved_at"], path))
        for _, path in sorted(found)[:-KEEP_STATES]:
            path.unlink(missing_ok=True)

    def render_validation(self):
        prompts = [p for p in self.config.validation_prompts if p.strip()]
        if not prompts:
            return []
        config = self.config
        negative = bridge.conditioning(bridge.encode_text(self.clip, ""))
        size = config.validation_size
        images = []
        with torch.no_grad():
            for prompt in prompts:
                positive = bridge.conditioning(bridge.encode_text(self.clip, prompt))
                images.append(bridge.render(self.denoiser.patcher, positive, negative, self.vae, size, size,
                                            config.validation_seed, config.validation_steps, 5.0, "euler", "normal"))
        return images

    def report(self, result, examples):
        stats = getattr(self, "cache_stats", None)
        lines = [
            f"LoRA {self.config.name}: {self.config.algorithm} rank {self.config.rank}, "
            f"{self.adapters.num_parameters():,} parameters on {len(self.adapters.names())} layers "
            f"({self.config.targets}, {self.arch})",
            f"steps {result.resumed_from} -> {self.config.steps} in {result.seconds:.1f}s; "
            f"final loss {result.losses[-1]:.4f}" if result.losses else "no steps run",
            f"images {len(examples)}, buckets {self.dataset.buckets()}",
        ]
        if stats is not None:
            lines.append(f"latent cache: {stats.hits} hits, {stats.misses} encoded")
        per_epoch = self.dataset.effective_size()
        if self.config.batch_size > per_epoch:
            lines.append(f"note: batch_size {self.config.batch_size} is more than the dataset's {per_epoch} "
                         f"image{'s' * (per_epoch != 1)} per epoch, so each batch holds at most {per_epoch}")
        if self.style_distances:
            lines.append("validation style distance to the dataset (lower is closer): " +
                         ", ".join(f"step {step}: {d:.3f}" for step, d in self.style_distances))
        lines += self.notes
        lines.append(f"saved {self.paths.lora}")
        return "\n".join(lines)


def run_training(config, model, clip, vae, dataset, node_id=None, prompt_id=None):
    return TrainingRun(config, model, clip, vae, dataset).execute(node_id, prompt_id)
