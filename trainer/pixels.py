"""ComfyUI IMAGE tensors <-> PIL images, in one place. An IMAGE is a float tensor [B, H, W, C]
with values 0..1."""

import numpy as np
import torch
from PIL import Image


def to_pil(image, rounded=False):
    """A PIL image from one ComfyUI IMAGE ([H, W, C] or [1, H, W, C], floats 0..1, C 1, 3 or 4; a
    tensor or an array; uint8 arrays as they are). A PIL image is returned as it is.

    By default values are truncated, as ComfyUI's SaveImage converts them, so a saved frame
    equals the core nodes' file of the same picture; `rounded` rounds to the nearest level.
    """
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float32 if image.is_floating_point() else image.dtype).numpy()
    array = np.asarray(image)
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise ValueError(f"got a batch of {array.shape[0]} images; save frames one at a time")
        array = array[0]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an image shaped [height, width, channels], got {list(array.shape)}")
    if array.dtype != np.uint8:
        scaled = 255.0 * array
        array = np.clip(np.rint(scaled) if rounded else scaled, 0, 255).astype(np.uint8)
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def image_tensor(picture):
    """A PIL image as a ComfyUI IMAGE [1, H, W, 3], floats 0..1."""
    array = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).unsqueeze(0)
