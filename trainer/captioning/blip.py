"""BLIP image captioning (`BlipForConditionalGeneration`), e.g. Salesforce/blip-image-captioning-large."""

from .common import generation_kwargs, local_load_kwargs, model_load_kwargs, move_inputs

TASKS = ("<CAPTION>",)


def check_blip_config(config, where):
    architectures = config.get("architectures") or []
    if architectures and "BlipForConditionalGeneration" not in architectures:
        raise where.error(
            f"it is a {', '.join(architectures)} model (question answering or image-text matching), not a "
            "BLIP captioning model.",
            f"Use a BlipForConditionalGeneration model such as Salesforce/blip-image-captioning-large in "
            f"{where.expected_place}")


def load_blip(folder, device, dtype):
    from transformers import BlipForConditionalGeneration, BlipProcessor

    model = BlipForConditionalGeneration.from_pretrained(folder.path, **model_load_kwargs(dtype))
    processor = BlipProcessor.from_pretrained(folder.path, **local_load_kwargs())
    return model.to(device).eval(), processor


def caption_blip(model, processor, images, task, options):
    """Raw decoded captions. BLIP has one task (the caller checked it); with a prompt, BLIP
    continues it, so each caption starts with it."""
    text = [options.prompt] * len(images) if options.prompt else None
    inputs = processor(images=images, text=text, return_tensors="pt")
    output_ids = model.generate(**move_inputs(inputs, model.device, model.dtype), **generation_kwargs(options))
    return processor.batch_decode(output_ids, skip_special_tokens=True)
