"""Image embeddings with a local vision model (Hugging Face ``transformers`` format: CLIP, ViT,
ResNet, ConvNeXt, DINOv2, ... saved with ``save_pretrained``), images read with Pillow.

Why not torchvision or open_clip: PyPI's torchvision does not import beside the CPU build of
torch this project pins (``operator torchvision::nms does not exist``) and open_clip needs
torchvision; ``transformers`` comes with sentence-transformers (the text extra) and reads the same
backbones from a local folder. The vector of an image: CLIP's projected image embedding
(``get_image_features``) where the model has one, else the pooled output, else the mean of the
last hidden states.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cranerec.data.errors import DataError
from cranerec.features.text import INSTALL_HINT, check_model_dir, offline
from cranerec.utils.progress import Mode, counter


def load_image_model(path: str | Path, device: str = "cpu", flag: str = "--model"):
    """(processor, model) from a local ``transformers`` directory, in eval mode on ``device``."""
    offline()
    path = Path(path)
    check_model_dir(path, "config.json", "transformers vision", flag)
    try:
        from transformers import AutoImageProcessor, AutoModel
    except ImportError:
        raise DataError(f"image features need transformers: {INSTALL_HINT}") from None
    try:
        processor = AutoImageProcessor.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - a foreign directory fails in many ways
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{flag} {path}: cannot load it as a vision model ({msg})") from None
    return processor, model.to(device).eval()


def open_image(path: Path):
    """The image at ``path`` as 8-bit RGB, or ``None`` when it is missing or unreadable.

    Pillow's ``convert("RGB")`` clips a 16-bit greyscale image (mode ``I;16`` or ``I``, as a
    16-bit PNG opens) at 255, which leaves a few grey levels of it; those are rescaled from
    0..65535 first, and a float image (mode ``F``) from 0..1 when its values lie there."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if img.mode.startswith("I") or img.mode == "F":
                img = Image.fromarray(_to_8bit(np.asarray(img), img.mode), mode="L")
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def _to_8bit(pixels: np.ndarray, mode: str) -> np.ndarray:
    """Greyscale pixels of a 16-bit (``I;16*``, ``I``) or float (``F``) image as uint8."""
    x = pixels.astype(np.float64)
    if mode == "F":
        top = 1.0 if x.size and np.nanmax(x) <= 1.0 else 255.0
    else:
        # 16-bit data (a 16-bit PNG opens as I;16 or I); a 32-bit image of 8-bit values as is
        peak = float(x.max()) if x.size else 0.0
        top = 255.0 if mode == "I" and peak <= 255 else max(65535.0, peak)
    return np.clip(np.rint(np.nan_to_num(x) / top * 255.0), 0, 255).astype(np.uint8)


def _vectors(model, pixel_values):
    import torch

    if hasattr(model, "get_image_features"):
        out = model.get_image_features(pixel_values=pixel_values)
        return out if isinstance(out, torch.Tensor) else out.pooler_output
    out = model(pixel_values=pixel_values)
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)  # [B, C, 1, 1] for CNNs -> [B, C]
    return out.last_hidden_state.mean(dim=1)


def embed_images(
    paths: list[Path | None], processor, model, batch_size: int = 32,
    progress: bool | Mode = True,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Embed each image; returns ([n, width] float32, ok [n] bool). A missing or unreadable
    image (or a ``None`` path) gives a row of zeros and ``ok`` False."""
    import torch

    device = next(model.parameters()).device
    ok = np.zeros(len(paths), dtype=bool)
    rows: list[tuple[int, np.ndarray]] = []
    width = None
    with (
        torch.inference_mode(),
        counter("images", len(paths), progress, unit="img") as bar,
    ):
        for start in range(0, len(paths), batch_size):
            batch = [(i, open_image(p) if p is not None else None)
                     for i, p in enumerate(paths[start : start + batch_size], start)]  # fmt: skip
            good = [(i, img) for i, img in batch if img is not None]
            if good:
                pixels = processor(images=[img for _, img in good], return_tensors="pt")[
                    "pixel_values"
                ]
                vec = _vectors(model, pixels.to(device)).float().cpu().numpy()
                width = vec.shape[1]
                for (i, _), v in zip(good, vec, strict=True):
                    rows.append((i, v))
                    ok[i] = True
            bar.update(len(batch))
    if width is None:
        raise DataError("no image could be read (every path is missing or unreadable)")
    out = np.zeros((len(paths), width), dtype=np.float32)
    for i, v in rows:
        out[i] = v
    return out, ok
