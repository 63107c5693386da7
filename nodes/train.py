"""LookDev Train Style LoRA: train a LoRA on the loaded model from a LookDev dataset."""

from ..trainer import comfy_bridge as bridge
from ..trainer.options import help_of
from ..trainer.training.config import TrainConfig
from ..trainer.training.run import RunPaths, output_identity, run_training
from .common import CATEGORY, DATASET, LORA, from_config, tip

# Shown by default; every other trainer input carries the `advanced` input option, which the web
# extension folds until the node's Show Advanced (web/lookdev_modes.js). A frontend without that
# menu shows them all; values are saved and queued either way.
ESSENTIAL = ("name", "steps", "learning_rate", "rank", "targets", "seed", "recipe")

# Ranges come from TrainConfig's fields; these are widget settings only.
_REQUIRED = {
    "name": {},
    "steps": {},
    "learning_rate": {"step": 1e-5, "round": False},
    "rank": {},
    "alpha": {"step": 0.5},
    "batch_size": {},
    "targets": {},
    "seed": {},
}
_OPTIONAL = {
    "trigger": {},
    "algorithm": {},
    "optimizer": {},
    "schedule": {},
    "warmup_steps": {},
    "grad_accum": {},
    "dtype": {},
    "gradient_checkpointing": {},
    "timestep_sampling": {},
    "noise_offset": {"step": 0.01},
    "min_snr_gamma": {"step": 0.5},
    "loss": {},
    "caption_dropout": {"step": 0.01},
    "shuffle_captions": {},
    "keep_tokens": {},
    "save_every": {},
    "validate_every": {},
    "validation_steps": {},
    "validation_size": {},
    "resume": {},
    "save_dtype": {},
}


def _widget(name, **options):
    return from_config(TrainConfig, name, **options, **({} if name in ESSENTIAL else {"advanced": True}))


class TrainStyleLoRA:
    DISPLAY_NAME = "LookDev Train Style LoRA"
    DESCRIPTION = ("Teach the model a visual style from a LookDev dataset: trains a small LoRA adapter on the "
                   "frozen model, saves it to the loras folder (kohya format, metadata in the file) and outputs "
                   "the model with the style applied, ready to render. Re-running with the same name and settings "
                   "resumes; an existing LoRA it did not make is kept as .bak.")
    CATEGORY = f"{CATEGORY}/train"
    RETURN_TYPES = ("MODEL", LORA, "STRING", "IMAGE")
    RETURN_NAMES = ("model", "lora", "lora_path", "loss_curve")
    OUTPUT_TOOLTIPS = ("The input model with the trained LoRA applied.",
                       "The trained LoRA in memory, for LookDev Apply LoRA.",
                       "Where the LoRA file was saved.",
                       "Loss and learning rate over the run.")
    FUNCTION = "execute"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        required = {
            "model": tip("MODEL", "The base model to teach the style to; it is left unchanged."),
            "clip": tip("CLIP", "Text encoder of the same checkpoint, to encode the captions."),
            "vae": tip("VAE", "VAE of the same checkpoint, to encode the images (latents are cached on disk)."),
            "dataset": tip(DATASET, "Images and captions from LookDev Load Dataset / Caption Dataset."),
        }
        required.update({name: _widget(name, **opts) for name, opts in _REQUIRED.items()})
        optional = {name: _widget(name, **opts) for name, opts in _OPTIONAL.items()}
        optional["validation_prompts"] = tip("STRING", help_of(TrainConfig, "validation_prompts"), multiline=True,
                                             default="", advanced=True)
        # The editor saves widget values by position: inputs added after recipe was shipped go after it,
        # so saved workflows keep loading.
        optional["recipe"] = _widget("recipe")
        optional["multires_noise_iterations"] = _widget("multires_noise_iterations")
        optional["multires_noise_discount"] = _widget("multires_noise_discount", step=0.05)
        return {"required": required, "optional": optional, "hidden": {"unique_id": "UNIQUE_ID", "prompt": "PROMPT"}}

    @classmethod
    def IS_CHANGED(cls, name=None, **_):
        """Which output file a run would make: a deleted or replaced LoRA makes ComfyUI run the
        node again instead of answering from its cache (run.output_identity)."""
        if not isinstance(name, str):
            return float("nan")  # linked from another node: known at run time only
        try:
            return output_identity(RunPaths.for_name(TrainConfig(name=name).checked_name()))
        except ValueError as exc:
            return f"unusable: {exc}"  # execute raises this same error for the user

    def execute(self, model, clip, vae, dataset, unique_id=None, prompt=None, **settings):
        prompts = tuple(line.strip() for line in settings.pop("validation_prompts", "").splitlines() if line.strip())
        config = TrainConfig(**settings, validation_prompts=prompts)
        out = run_training(config, model, clip, vae, dataset, node_id=unique_id, prompt_id=bridge.current_prompt_id(),
                           base_model=bridge.model_file_name(prompt, unique_id))
        ui_images = [*out.preview_refs, out.loss_ref]
        return {"ui": {"images": ui_images, "text": [out.report]},
                "result": (out.model, out.lora, str(out.path), out.loss_image)}


NODES = {"LookDevTrainStyleLoRA": TrainStyleLoRA}
