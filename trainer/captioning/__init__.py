"""Raw content captions from local image-to-text models (BLIP, Florence-2).

A style dataset is captioned with what is in each frame, never its style (that is learned by the
trigger word); trainer/dataset/captions.py adds the trigger word and strips style words.
"""

from .captioner import (
    CAPTIONER_FAMILIES,
    Captioner,
    CaptionerFamily,
    caption_images,
    check_model_folder,
    find_captioner_folder,
    list_captioner_folders,
    load_captioner,
)
from .cleaning import LEADING_FILLERS, clean_model_caption
from .common import CaptionerModelError, CaptionOptions, ModelFolder

__all__ = [
    "CAPTIONER_FAMILIES", "LEADING_FILLERS", "CaptionOptions", "Captioner", "CaptionerFamily",
    "CaptionerModelError", "ModelFolder", "caption_images", "check_model_folder", "clean_model_caption",
    "find_captioner_folder", "list_captioner_folders", "load_captioner",
]
