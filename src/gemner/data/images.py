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


def load_image(path: str | Path, *, limit_pixels: int | None = None, limit_side: int | None = None) -> Image.Image:
    """Open, check, decode (downscaled to `limit_side`) and convert an image to RGB; `ImageError` if unusable."""
    limit_pixels = max_pixels() if limit_pixels is None else limit_pixels
    limit_side = max_side() if limit_side is None else limit_side
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(path) as image:
                size = image.size
                if size[0] * size[1] > limit_pixels:
                    raise ImageError(f"image {path} is {size[0]}x{size[1]} pixels, over the limit of "
                                     f"{limit_pixels:,} (GEMNER_MAX_IMAGE_PIXELS)")
                image.draft("RGB", (limit_side, limit_side))  # JPEG decodes at 1/2, 1/4, 1/8 scale
                image.load()
                if max(image.size) > limit_side:
                    image.thumbnail((limit_side, limit_side), Image.Resampling.LANCZOS)  # in place
                rgb = image.convert("RGB")
    except ImageError:
        raise
    except Image.DecompressionBombError as err:  # Pillow's own ceiling, checked as it reads the header
        raise ImageError(f"image {path} is over the limit of {limit_pixels:,} pixels ({err})") from None
    except (OSError, SyntaxError, ValueError, MemoryError) as err:
        raise ImageError(f"unreadable image {path} ({type(err).__name__}: {err})") from None
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


class ImageTooLargeError(ImageError):
    """An image over a size limit (bytes or pixels), as opposed to a broken one."""


def load_image_bytes(data: bytes, *, name: str = "upload", limit_bytes: int | None = None,
                     limit_pixels: int | None = None, limit_side: int | None = None) -> Image.Image:
    """`load_image` for an image held in memory (an upload): the same header check before decoding, the
    same downscale and RGB result. `ImageTooLargeError` over `limit_bytes` or the pixel limit,
    `ImageError` when the bytes are not a usable image; `name` only labels the messages."""
    limit_pixels = max_pixels() if limit_pixels is None else limit_pixels
    limit_side = max_side() if limit_side is None else limit_side
    if limit_bytes is not None and len(data) > limit_bytes:
        raise ImageTooLargeError(f"image {name} is {len(data):,} bytes, over the limit of {limit_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(io.BytesIO(data)) as image:
                size = image.size
                if size[0] * size[1] > limit_pixels:
                    raise ImageTooLargeError(f"image {name} is {size[0]}x{size[1]} pixels, over the limit of "
                                             f"{limit_pixels:,}")
                image.draft("RGB", (limit_side, limit_side))
                image.load()
                if max(image.size) > limit_side:
                    image.thumbnail((limit_side, limit_side), Image.Resampling.LANCZOS)
                rgb = image.convert("RGB")
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"image {name} is over the limit of {limit_pixels:,} pixels ({err})") from None
    except (OSError, SyntaxError, ValueError, MemoryError) as err:
        raise ImageError(f"unreadable image {name} ({type(err).__name__}: {err})") from None
    rgb.info[ORIGINAL_SIZE] = size
    return rgb
