"""Florence-2 in transformers' own format (`Florence2ForConditionalGeneration`, transformers 4.56+),
e.g. florence-community/Florence-2-base or -large. The original microsoft/Florence-2-* folders need
code shipped inside the model folder, which LookDev never runs."""

from .common import generation_kwargs, local_load_kwargs, model_load_kwargs, move_inputs

# Caption tasks only: the others (detection, OCR, ...) answer with boxes, not a description.
TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
DEFAULT_TASK = "<DETAILED_CAPTION>"
NATIVE_VISION_MODEL_TYPE = "florence_vision"
NATIVE_MIN_TRANSFORMERS = "4.56"


def check_florence2_config(config, where):
    vision_type = (config.get("vision_config") or {}).get("model_type")
    if vision_type != NATIVE_VISION_MODEL_TYPE:
        raise where.error(
            f"its vision_config has model_type {vision_type!r} instead of {NATIVE_VISION_MODEL_TYPE!r}: this "
            "is the original Florence-2 format, which needs remote code from the model folder that LookDev "
            "never runs.",
            f"Use a transformers-native conversion (florence-community/Florence-2-base or -large) in "
            f"{where.expected_place}")


def load_florence2(folder, device, dtype):
    import transformers

    try:
        from transformers import Florence2ForConditionalGeneration, Florence2Processor
    except ImportError as exc:
        raise folder.error(
            f"Florence-2 needs transformers {NATIVE_MIN_TRANSFORMERS} or newer, this Python has "
            f"transformers {transformers.__version__}.",
            f"Update it (pip install -U 'transformers>={NATIVE_MIN_TRANSFORMERS}') or caption with a BLIP model.",
        ) from exc
    model = Florence2ForConditionalGeneration.from_pretrained(folder.path, **model_load_kwargs(dtype))
    processor = Florence2Processor.from_pretrained(folder.path, **local_load_kwargs())
    return model.to(device).eval(), processor


def caption_florence2(model, processor, images, task, options):
    """Caption text only: special tokens (<s>, </s>, padding of shorter captions in a batch) are
    dropped while decoding, which is all Florence-2's post-processing does for caption tasks."""
    inputs = processor(images=images, text=[task] * len(images), return_tensors="pt")
    output_ids = model.generate(**move_inputs(inputs, model.device, model.dtype), **generation_kwargs(options))
    return processor.batch_decode(output_ids, skip_special_tokens=True)
