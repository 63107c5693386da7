"""One training run from ComfyUI objects to a saved LoRA: the trainer node's whole job.

`run_training` reads top to bottom: prepare the data (cached latents, caption variants), build
the adapters on the model ComfyUI loaded, train (resuming the same recipe's checkpoint), save
the kohya-format file, apply it to the model. Each stage takes values and returns values.
"""

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import comfy_bridge as bridge
from .. import events
from ..dataset.cache import LatentCache
from ..dataset.captions import drop_caption, plain_caption, shuffle_tags, split_tags
from ..fileio import keep_aside, remove_stale_temps, write_image, write_json
from ..lora.apply import ApplyOptions, apply_lora
from ..lora.io import LoraFileError, read_lora, read_metadata, save_lora
from ..lora.keys import ARCHITECTURES, TRAINABLE, kohya_names
from ..lora.metadata import TrainingFacts, build_metadata
from ..style_metric import validation_style_distance
from ..pixels import to_pil
from ..render.storyboard import ui_image
from ..status import duration, send_status
from ..trigger import pick_trigger
from . import state
from .adapters import AdapterSet
from .data import Example, derive_seed
from .export import kohya_tensors
from .loop import TrainHooks, train
from .plot import loss_curve_image
from .recipes import apply_recipe
from .registries import DTYPES
from .targets import select_targets

log = logging.getLogger("LookDev")
VERSION = "0.1.0"
KEEP_STATES = 2  # resumable checkpoints kept per LoRA name; each holds optimizer state (~3x the LoRA)
RECIPE_KEY = "lookdev.recipe"  # LoRA metadata: state.recipe_id of the run that made the file
MADE_KEY = "lookdev.made"  # LoRA metadata: which output of that name this is (see output_identity)


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

    @property
    def loss_curve(self):
        """The loss chart, named after the LoRA beside its work folder: lookdev/<name>_loss.png."""
        return self.work.parent / f"{self.work.name}_loss.png"

    @property
    def made(self):
        """{"made": n}: how many times a run of this name wrote the final LoRA."""
        return self.work / "made.json"


@dataclass
class RunOutputs:
    model: object  # MODEL with the LoRA applied
    lora: object  # LoraFile
    path: Path
    loss_image: torch.Tensor
    loss_ref: dict  # loss_image saved as a PNG in the output folder, as {filename, subfolder, type}
    previews: list  # [1, H, W, 3] validation renders of the final LoRA
    preview_refs: list  # those renders saved in the temp folder, as {filename, subfolder, type}
    report: str


def output_identity(paths):
    """Which output of this name the next run makes, as a string: the number of the file there when
    it is the last one a LookDev run made, else the number after it (deleted, replaced, never made).
    The node's IS_CHANGED: equal before and after a run, so ComfyUI's cache holds exactly while
    the file a run made is still in place."""
    try:
        made = json.loads(paths.made.read_text(encoding="utf-8")).get("made", 0)
    except (OSError, ValueError, AttributeError):
        made = 0
    made = made if isinstance(made, int) else 0
    return str(made) if made and _lora_metadata(paths.lora).get(MADE_KEY) == str(made) else str(made + 1)


def _lora_metadata(path):
    try:
        return read_metadata(path)
    except (OSError, LoraFileError):
        return {}


def check_trainable(model):
    """LookDev's architecture name for the model; ValueError naming ComfyUI's name for it and the
    supported ones when LookDev cannot train it. Called before anything is read or written."""
    arch = bridge.architecture(model)
    if arch not in TRAINABLE:
        supported = "\n".join(f"- {ARCHITECTURES[name]}" for name in TRAINABLE)
        raise ValueError(f"LookDev cannot train this model: ComfyUI loaded it as {bridge.model_class_name(model)}, "
                         "an architecture LookDev does not handle (it has no target layers or LoRA names for it). "
                         f"Nothing was written. LookDev trains:\n{supported}")
    return arch


# -- 1. prepare data --------------------------------------------------------------------------

def prepare_latents(dataset, vae, cache_folder, on_progress=None):
    """(raw VAE latents per sample, cache stats): cached by image content and VAE.
    on_progress(done, total): after each encoded batch of the images not in the cache."""
    cache = LatentCache(cache_folder)
    latents = cache.latents_for(dataset.samples, bridge.vae_identity(vae),
                                lambda images: bridge.encode_images(vae, images), on_progress=on_progress)
    return latents, cache.stats


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


def find_resume(config, paths, recipe, notes):
    """The newest readable checkpoint's Snapshot, or None (resume off, or nothing to resume).
    Unreadable files are skipped with a note; a checkpoint of another recipe is refused with the
    list of differences: continuing it would mix two recipes in one file."""
    if not config.resume:
        return None
    found, skipped = state.scan_checkpoints(paths.checkpoints)
    notes += [f"skipped {path.name}: {why}" for path, why in skipped]
    if not found:
        return None
    path, header = found[0]
    differences = state.recipe_differences(header.get("recipe"), recipe)
    if header["step"] > config.steps:
        differences.append(f"steps: the checkpoint has {header['step']} steps done, this run asks for "
                           f"{config.steps} (more steps continue it; fewer cannot)")
    if differences:
        raise ValueError(
            f"cannot resume LoRA {config.name!r} from {path}: it was trained with other settings:\n- "
            + "\n- ".join(differences)
            + "\nEither give this recipe a new name, or turn resume off to train it from step 0 under this "
              "name (the existing LoRA file is then kept as a .bak).")
    for path, header in found:
        try:
            snapshot = state.load_checkpoint(path)
        except ValueError as exc:
            notes.append(f"skipped {path.name}: {exc}")
            continue
        if snapshot.recipe != recipe:  # an older checkpoint of another recipe, behind an unreadable one
            break
        log.info("LookDev: resuming %s from step %d (%s)", config.name, header["step"], path)
        return snapshot
    return None


# -- 2. build adapters --------------------------------------------------------------------------

def target_layers(model, arch, targets):
    """{kohya name: layer module} of the layers the `targets` preset picks."""
    modules = dict(bridge.named_layers(model))
    paths = select_targets(modules.items(), arch, targets)
    return {name: modules[path] for path, name in kohya_names(paths, arch, bridge.lora_key_map(model)).items()}


# -- 4. save --------------------------------------------------------------------------------------

IN_MEMORY_FOLDER = "images"  # ss_dataset_dirs key of images that came from no file (IMAGE inputs, unwritten frames)


def dataset_folders(dataset):
    """({folder name: {tag: count}}, {folder name: {"n_repeats", "img_count"}}): kohya's
    ss_tag_frequency and ss_dataset_dirs, one entry per folder the images came from, keyed by
    the folder's name ("10_noir", as kohya keys its subsets) and never by its path, which would
    tell everyone the file is shared with where the user keeps their work."""
    tags, dirs = {}, {}
    for sample in dataset.samples:
        folder = (sample.source.parent.name if sample.source is not None else "") or IN_MEMORY_FOLDER
        entry = dirs.setdefault(folder, {"n_repeats": sample.repeats, "img_count": 0})
        entry["n_repeats"] = max(entry["n_repeats"], sample.repeats)
        entry["img_count"] += 1
        counts = tags.setdefault(folder, {})
        for tag in split_tags(plain_caption(sample.caption)):
            counts[tag] = counts.get(tag, 0) + 1
    return tags, dirs


class LoraWriter:
    """Writes this run's checkpoints, intermediate LoRAs and final LoRA, each with metadata that
    describes exactly the weights in it."""

    def __init__(self, config, paths, recipe, dataset, arch, base_weights, v_prediction, base_model=None,
                 modelspec_id=""):
        self.config, self.paths, self.recipe, self.dataset, self.arch = config, paths, recipe, dataset, arch
        self.base_weights, self.v_prediction, self.base_model = base_weights, v_prediction, base_model
        self.modelspec_id = modelspec_id
        self.started_at = time.time()

    def save_checkpoint(self, snapshot, intermediate=True):
        name = f"{self.config.name}-step{snapshot.step:06d}"
        state.save_checkpoint(self.paths.checkpoints / f"{name}{state.SUFFIX}", snapshot)
        if intermediate:
            self._save(self.paths.work / f"{name}.safetensors", snapshot)
        self._prune_states()

    def save_final(self, snapshot):
        """Save the LoRA; (LoraFile, note or None). A file of that name that a run of another
        recipe or another tool made is first kept aside as .bak, never overwritten."""
        made = int(output_identity(self.paths))
        note = None
        if self.paths.lora.exists() and _lora_metadata(self.paths.lora).get(RECIPE_KEY) != state.recipe_id(self.recipe):
            backup = keep_aside(self.paths.lora)
            note = (f"kept the existing {self.paths.lora.name} (not made by this recipe) as {backup.name}; "
                    "rename it back to use it")
        path = self._save(self.paths.lora, snapshot, made=made)
        write_json(self.paths.made, {"made": made})
        return read_lora(path), note  # the in-memory LoRA is exactly the file's tensors

    def _save(self, path, snapshot, made=None):
        tensors = kohya_tensors(snapshot.adapter_state, self.config.adapter_spec(), self.base_weights,
                                dtype=torch.float32)
        metadata = build_metadata(self._facts(snapshot.step))
        metadata[RECIPE_KEY] = state.recipe_id(self.recipe)
        if made is not None:
            metadata[MADE_KEY] = str(made)
        return save_lora(path, tensors, metadata, dtype=self.config.save_dtype)

    def _prune_states(self):
        found = [(header["saved_at"], path) for path, header in state.scan_checkpoints(self.paths.checkpoints)[0]
                 if header.get("recipe") == self.recipe]
        for _, path in sorted(found)[:-KEEP_STATES]:
            path.unlink(missing_ok=True)

    def _facts(self, steps):
        config, dataset = self.config, self.dataset
        algo = config.algorithm
        widths = sorted(dataset.buckets(), key=lambda wh: -wh[0] * wh[1])
        tags, dirs = dataset_folders(dataset)
        return TrainingFacts(
            arch=self.arch, output_name=config.name, lookdev_version=VERSION, network_dim=config.rank,
            network_alpha=config.alpha, steps=steps, max_train_steps=config.steps,
            learning_rate=config.learning_rate, training_started_at=self.started_at,
            training_finished_at=time.time(),
            network_module="networks.lora" if algo == "lora" else "lycoris.kohya",
            network_args={} if algo == "lora" else {"algo": "lora" if algo == "dora" else algo,
                                                    **({"dora_wd": "true"} if algo == "dora" else {})},
            optimizer=config.optimizer, lr_scheduler=config.schedule, lr_warmup_steps=config.warmup_steps,
            seed=config.seed, resolution=widths[0] if widths else (dataset.resolution,) * 2,
            num_train_images=len(dataset), batch_size=config.batch_size,
            gradient_accumulation_steps=config.grad_accum, gradient_checkpointing=config.gradient_checkpointing,
            mixed_precision={"fp32": "no", "auto": "no"}.get(config.dtype, config.dtype),
            noise_offset=config.noise_offset or None, min_snr_gamma=config.min_snr_gamma or None,
            multires_noise_iterations=config.multires_noise_iterations or None,
            multires_noise_discount=config.multires_noise_discount if config.multires_noise_iterations else None,
            caption_dropout_rate=config.caption_dropout, keep_tokens=config.keep_tokens,
            shuffle_caption=config.shuffle_captions, v_prediction=self.v_prediction,
            modelspec_architecture=self.modelspec_id,
            tag_frequency=tags, dataset_dirs=dirs, sd_model_name=self.base_model or "",
            trigger_words=[w for w in config.trigger.split(",") if w.strip()],  # run_training picked it
            config=config.to_dict())


# -- validation renders and the node's hooks ------------------------------------------------------

def validation_prompts(config):
    """The validation prompts to render, {trigger} filled in."""
    return [p.replace("{trigger}", config.trigger) for p in config.validation_prompts if p.strip()]


def render_validation(config, clip, vae, patcher, on_image=None):
    """One image per validation prompt, sampled from `patcher` (the model being trained) at its
    family's usual CFG (and distilled guidance for Flux.1 dev and Flux.2 dev, with cfg 1).
    on_image(k, K): before the k-th of K images is rendered."""
    prompts = validation_prompts(config)
    if not prompts:
        return []
    negative = bridge.conditioning(bridge.encode_text(clip, ""))
    cfg, guidance = bridge.usual_sampling(patcher)
    size = config.validation_size
    images = []
    with torch.no_grad():
        for index, prompt in enumerate(prompts, start=1):
            if on_image is not None:
                on_image(index, len(prompts))
            positive = bridge.conditioning(bridge.encode_text(clip, prompt))
            if guidance is not None:
                positive = bridge.with_guidance(positive, guidance)
            images.append(bridge.render(patcher, positive, negative, vae, size, size, config.validation_seed,
                                        config.validation_steps, cfg, "euler", "normal"))
    return images


class _NodeHooks(TrainHooks):
    """Progress bar, websocket events, Cancel, checkpoints and validation renders."""

    def __init__(self, config, writer, render, start, node_id, prompt_id, status, references):
        self.config, self.writer, self.render, self.start = config, writer, render, start
        self.node_id, self.prompt_id, self.status = node_id, prompt_id, status
        self.references = references  # the dataset's samples, for the style distance of each round
        self.bar = bridge.progress_bar(config.steps)
        self.validation_seconds = 0.0  # spent in renders during the loop
        self.style_distances = []  # (step, style distance of that round's renders to the dataset)

    def check_cancel(self):
        bridge.check_cancel()

    def on_step(self, report):
        self.bar.update_absolute(report.step, report.total)
        bridge.send_event(events.EVENT_TRAIN_PROGRESS, {
            "node": self.node_id, "prompt_id": self.prompt_id, "name": self.config.name,
            "step": report.step, "total": report.total, "loss": report.loss, "loss_smooth": report.loss_smooth,
            "lr": report.lr, "elapsed_s": report.elapsed, "eta_s": report.eta, "resumed_from": self.start})

    def on_checkpoint(self, snapshot):
        self.writer.save_checkpoint(snapshot)

    def on_validate(self, step):
        began = time.perf_counter()
        images = self.render(lambda k, n: self.status("validation", f"rendering validation images {k} / {n} "
                                                                      f"(step {step})", k, n))
        refs = [bridge.save_temp_image(image, f"lookdev_{self.config.name}_step{step:06d}") for image in images]
        distance = validation_style_distance(images, self.references)
        if distance is not None:
            self.style_distances.append((step, distance))
        self.validation_seconds += time.perf_counter() - began
        self.status("training", f"training: step {step} / {self.config.steps}", step, self.config.steps)
        if refs:
            bridge.send_event(events.EVENT_TRAIN_PREVIEW, {
                "node": self.node_id, "prompt_id": self.prompt_id, "step": step, "images": refs,
                "prompts": validation_prompts(self.config), "style_distance": distance})


# -- the run ----------------------------------------------------------------------------------------

def run_training(config, model, clip, vae, dataset, node_id=None, prompt_id=None, base_model=None):
    """Train, save and apply; `base_model`: the file name of the checkpoint MODEL came from, if
    known (written as ss_sd_model_name)."""
    config = config.validate()
    arch = check_trainable(model)
    config, recipe_lines = apply_recipe(config, arch, ARCHITECTURES)
    if len(dataset) == 0:
        raise ValueError("the dataset has no images")
    config.trigger, trigger_line = pick_trigger(config.trigger, dataset.trigger, "the dataset")
    paths = RunPaths.for_name(config.name)
    recipe = state.recipe(config, dataset, arch)
    notes = [f"removed {path.name}, a partial file of an interrupted run" for path in paths.remove_stale_temps()]

    began = time.perf_counter()

    def status(phase, text, done=None, total=None):
        send_status(node_id, prompt_id, phase, text, done, total)

    # 1. prepare data
    status("caching", f"caching latents of {len(dataset)} images")
    raw_latents, cache_stats = prepare_latents(
        dataset, vae, paths.cache, lambda done, total: status("caching", f"caching latents {done} / {total}", done, total))
    phases = {"caching": time.perf_counter() - began}
    compute_dtype = bridge.resolve_dtype(config.dtype, DTYPES)
    with bridge.training_session(model, clip, compute_dtype, config.gradient_checkpointing) as den:
        # Loaded inside the session: tensors made under the executor's inference mode could not be
        # updated by the optimizer.
        resume = find_resume(config, paths, recipe, notes)
        for note in notes:
            log.warning("LookDev: %s", note)
        examples = prepare_examples(dataset, [den.to_model_space(l.to(den.device)) for l in raw_latents], config)

        # 2. build adapters
        layers = target_layers(model, arch, config.targets)
        adapters = AdapterSet(layers, config.adapter_spec(), seed=config.seed)
        adapters.to_training(den.device)
        writer = LoraWriter(config, paths, recipe, dataset, arch,
                            base_weights={name: layer.weight for name, layer in layers.items()},
                            v_prediction=den.kind == "v", base_model=base_model,
                            modelspec_id=bridge.modelspec_id(model))

        def render(on_image=None):
            return render_validation(config, clip, vae, den.patcher, on_image)

        hooks = _NodeHooks(config, writer, render, resume.step if resume else 0, node_id, prompt_id, status,
                           dataset.samples)
        with adapters.attach():
            # 3. train
            status("training", f"training: {config.steps} steps", resume.step if resume else 0, config.steps)
            adapters.train()
            result = train(config, den, adapters, examples, hooks=hooks, resume=resume, recipe=recipe)
            adapters.eval()
            phases["training"] = result.seconds - hooks.validation_seconds
            # 4. save (before the final renders, so a Cancel during them loses nothing)
            status("saving", f"saving {paths.lora.name}")
            saving = time.perf_counter()
            writer.save_checkpoint(result.snapshot, intermediate=False)
            lora, kept = writer.save_final(result.snapshot)
            phases["saving"] = time.perf_counter() - saving
            rendering = time.perf_counter()
            previews = render(lambda k, n: status("validation", f"rendering final validation images {k} / {n}", k, n))
            preview_refs = [bridge.save_temp_image(image, f"lookdev_{config.name}_final") for image in previews]
            final_distance = validation_style_distance(previews, dataset.samples)
            if final_distance is not None:
                hooks.style_distances.append((config.steps, final_distance))
            phases["validation"] = hooks.validation_seconds + time.perf_counter() - rendering

    # 5. apply: the same path as LookDev Apply LoRA, so the output MODEL equals applying the file.
    model = apply_lora(model, None, lora, ApplyOptions(strength_model=1.0, strength_clip=0.0)).model
    loss_image = loss_curve_image(result.losses, result.snapshot.lrs, f"{config.name} - {config.steps} steps")
    write_image(paths.loss_curve, to_pil(loss_image[0]), "PNG")
    loss_ref = ui_image(paths.loss_curve, bridge.folder("output"))
    node_seconds = time.perf_counter() - began
    bridge.send_event(events.EVENT_TRAIN_DONE, {
        "node": node_id, "prompt_id": prompt_id, "name": config.name, "path": str(lora.path),
        "steps": config.steps, "final_loss": result.losses[-1] if result.losses else None,
        "seconds": result.seconds, "node_seconds": node_seconds, "phases": phases,
        "loss_curve": str(paths.loss_curve), "loss_image": loss_ref,
        "images": preview_refs, "prompts": validation_prompts(config), "style_distance": final_distance})
    status("done", f"done: {config.steps} steps in {duration(node_seconds)} · saved {lora.path.name}")
    report = run_report(config, arch, adapters, dataset, result, cache_stats,
                        [trigger_line, *recipe_lines, *notes, *([kept] if kept else [])], paths.lora,
                        hooks.style_distances)
    times = ", ".join(f"{name} {duration(seconds)}" for name, seconds in phases.items())
    return RunOutputs(model=model, lora=lora, path=lora.path, loss_image=loss_image, loss_ref=loss_ref,
                      previews=previews, preview_refs=preview_refs,
                      report=f"{report}\nloss curve {paths.loss_curve}\ntime {duration(node_seconds)} in all: {times}")


def run_report(config, arch, adapters, dataset, result, cache_stats, notes, path, style_distances=()):
    lines = [
        f"LoRA {config.name}: {config.algorithm} rank {config.rank}, "
        f"{adapters.num_parameters():,} parameters on {len(adapters.names())} layers ({config.targets}, {arch})",
        f"steps {result.resumed_from} -> {config.steps} in {result.seconds:.1f}s; "
        f"final loss {result.losses[-1]:.4f}" if result.losses else "no steps run",
        f"images {len(dataset)}, buckets {dataset.buckets()}",
        f"latent cache: {cache_stats.hits} hits, {cache_stats.misses} encoded",
    ]
    per_epoch = dataset.effective_size()
    if config.batch_size > per_epoch:
        lines.append(f"note: batch_size {config.batch_size} is more than the dataset's {per_epoch} "
                     f"image{'s' * (per_epoch != 1)} per epoch, so each batch holds at most {per_epoch}")
    if style_distances:
        lines.append("validation style distance to the dataset (lower is closer): " +
                     ", ".join(f"step {step}: {d:.3f}" for step, d in style_distances))
    lines += notes
    lines.append(f"saved {path}")
    return "\n".join(lines)
