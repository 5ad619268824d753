"""The one image loader: every stage that reads a post's image calls `load_image`.

Limits (both configurable per call and through the environment):

* `max_pixels` (default 100,000,000, i.e. 10000x10000; `GEMNER_MAX_IMAGE_PIXELS`): width x height is
  read from the file header (Pillow opens lazily) and checked *before* any pixel is decoded; a larger
  image is refused with `ImageError` (Pillow's own ceiling, 178,956,970 pixels, cannot be raised
  from here). Decoding one image at the limit costs at most 4 bytes per pixel
  (400 MB) for the moment of the decode.
* `max_side` (default 2048; `GEMNER_MAX_IMAGE_SIDE`): a larger image is downscaled on load (JPEG: already
  while decoding, via `Image.draft`) so that its longer side is `max_side`. Every model of the pipeline
  resizes further anyway (BLIP 384, SAM 1024, LLaVA 336-672 pixels), so the results do not change,
  and an image held in a batch costs at most `max_side`^2 x 3 bytes (12.6 MB at 2048).

`load_image` takes a path, the bytes of an image file, or a PIL image, with the same limits.
The returned image is RGB. Coordinates computed on it are in loaded pixels; `to_original` maps them
back to the file's pixels (boxes and peaks are written in the file's pixels). Anything that makes an
image unusable (missing, not an image, truncated, too large) raises `ImageError`, which callers turn
into a per-post error.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from .issues import DataError

DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_MAX_SIDE = 2048
ORIGINAL_SIZE = "gemner_original_size"  # key in `Image.info`: (width, height) of the file


class ImageError(DataError):
    """An image that cannot be used for one post (missing, unreadable, too large)."""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise DataError(f"{name} must be a whole number of pixels, got {value!r}") from None


def max_pixels() -> int:
    return _env_int("GEMNER_MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS)


def max_side() -> int:
    return _env_int("GEMNER_MAX_IMAGE_SIDE", DEFAULT_MAX_SIDE)


class ImageTooLargeError(ImageError):
    """An image over a size limit (bytes or pixels), as opposed to a broken one."""


def load_image(source: str | Path | bytes | Image.Image, *, limit_pixels: int | None = None,
               limit_side: int | None = None, label: str | None = None) -> Image.Image:
    """Open, check, decode (downscaled to `limit_side`) and convert an image to RGB; `ImageError` if unusable.

    `source`: a file path, the bytes of an image file, or a PIL image (the caller's image is not
    changed; the same pixel limit applies to it, and the result is a downscaled RGB copy). `label` names
    the image in messages. Over the pixel limit: `ImageTooLargeError`."""
    limit_pixels = max_pixels() if limit_pixels is None else limit_pixels
    limit_side = max_side() if limit_side is None else limit_side
    if isinstance(source, Image.Image):
        name, opener = label or "the given image", None
    elif isinstance(source, bytes | bytearray | memoryview):
        name, opener = label or f"the given image ({len(source):,} bytes)", lambda: io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image {path} not found")
        name, opener = label or f"image {path}", lambda: path
    try:
        if opener is None:
            return _decoded(source, name, limit_pixels, limit_side, opened=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(opener()) as image:
                return _decoded(image, name, limit_pixels, limit_side, opened=True)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:  # Pillow's own ceiling, checked as it reads the header
        raise ImageTooLargeError(f"{name} is over the limit of {limit_pixels:,} pixels ({err})") from None
    except (OSError, SyntaxError, ValueError, MemoryError) as err:
        raise ImageError(f"unreadable {name} ({type(err).__name__}: {err})") from None


def _decoded(image: Image.Image, name: str, limit_pixels: int, limit_side: int, *, opened: bool) -> Image.Image:
    """The checks and decoding every source shares. `opened`: a lazily opened file (decoded here, in
    place); else a caller's image, copied before it is resized."""
    size = image.size
    if size[0] * size[1] > limit_pixels:
        raise ImageTooLargeError(f"{name} is {size[0]}x{size[1]} pixels, over the limit of "
                         f"{limit_pixels:,} (GEMNER_MAX_IMAGE_PIXELS)")
    if opened:
        image.draft("RGB", (limit_side, limit_side))  # JPEG decodes at 1/2, 1/4, 1/8 scale
        image.load()
    if max(image.size) > limit_side:
        image = image if opened else image.copy()
        image.thumbnail((limit_side, limit_side), Image.Resampling.LANCZOS)  # in place
    rgb = image.convert("RGB")  # a new image even when `image` is RGB already
    rgb.info[ORIGINAL_SIZE] = size
    return rgb


def check_image(path: str | Path, *, limit_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the header, after the checks of `load_image` short of decoding; `ImageError`."""
    limit_pixels = max_pixels() if limit_pixels is None else limit_pixels
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                size = image.size
                image.verify()
    except Image.DecompressionBombError as err:
        raise ImageError(f"image {path} is over the limit of {limit_pixels:,} pixels ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"unreadable image {path} ({type(err).__name__}: {err})") from None
    if size[0] * size[1] > limit_pixels:
        raise ImageError(f"image {path} is {size[0]}x{size[1]} pixels, over the limit of {limit_pixels:,} "
                         "(GEMNER_MAX_IMAGE_PIXELS)")
    return size


def original_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the file the image was loaded from (its own size when not from `load_image`)."""
    size = image.info.get(ORIGINAL_SIZE)
    return (int(size[0]), int(size[1])) if size else image.size


def to_original(image: Image.Image, coords: Sequence[float]) -> list[float]:
    """x, y, x, y, ... in the loaded image's pixels -> the same points in the file's pixels."""
    width, height = original_size(image)
    sx, sy = width / image.width, height / image.height
    if sx == 1 and sy == 1:
        return list(coords)
    return [round(v * (sx if i % 2 == 0 else sy), 2) for i, v in enumerate(coords)]


def to_loaded(image: Image.Image, coords: Sequence[float]) -> list[float]:
    """The inverse of `to_original` (to draw file-pixel boxes on the loaded image)."""
    width, height = original_size(image)
    sx, sy = image.width / width, image.height / height
    if sx == 1 and sy == 1:
        return list(coords)
    return [v * (sx if i % 2 == 0 else sy) for i, v in enumerate(coords)]



def load_image_bytes(data: bytes, *, name: str = "upload", limit_bytes: int | None = None,
                     limit_pixels: int | None = None, limit_side: int | None = None) -> Image.Image:
    """`load_image` for an upload: first a byte limit (`ImageTooLargeError`), then the same checks."""
    if limit_bytes is not None and len(data) > limit_bytes:
        raise ImageTooLargeError(f"image {name} is {len(data):,} bytes, over the limit of {limit_bytes:,}")
    return load_image(data, limit_pixels=limit_pixels, limit_side=limit_side, label=f"image {name}")
