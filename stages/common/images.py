"""Reading a user's image as 8-bit RGB, whatever its mode, with one DataError for any file that is not one.

Size limit: PIL's `Image.MAX_IMAGE_PIXELS` (89,478,485 pixels by default, e.g. 9459 x 9459). PIL only warns
between that and twice it; here the warning is an error too, so an image over the limit is refused with a
DataError, never decoded.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from stages.common.io import DataError

if TYPE_CHECKING:
    from PIL import Image

ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def open_rgb(src: str | Path | bytes, name: str | Path) -> Image.Image:
    """The image in file `src` (a path, or its bytes) as a loaded 'RGB' image; `name` is the user's path that
    errors show. A missing, undecodable or cut-short file, or one over the size limit, is a DataError."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as image:
                image.load()
                return to_rgb(image, name)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise DataError(f"{name}: image too large ({err})") from None
        except FileNotFoundError:
            raise DataError(f"{name}: file not found") from None
        except DataError:
            raise
        except Image.UnidentifiedImageError:  # (its message names `src`, maybe a temporary copy)
            raise DataError(f"{name}: not a readable image (not an image format PIL knows)") from None
        except Exception as err:  # PIL reports a broken file as OSError, SyntaxError, ValueError, struct.error, ...
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{name}: not a readable image ({reason})") from None


def to_rgb(image: Image.Image, name: str | Path) -> Image.Image:
    """`image` as 8-bit 'RGB': 16-bit greyscale (I;16*, I, read as 0..65535) scaled by 255/65535; transparency
    (an alpha channel, or a palette's or colour key's transparent colour) composited on white; every other
    mode (1, L, P, CMYK, YCbCr, ...) converted by PIL. A mode PIL cannot convert is a DataError."""
    from PIL import Image

    if image.mode in SIXTEEN_BIT_MODES:
        import numpy as np

        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        grey = Image.fromarray(np.rint(values / 257).astype(np.uint8))  # 2-D uint8: mode L
        return grey.convert("RGB")
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as err:  # e.g. LAB, HSV: PIL has no direct conversion
        raise DataError(f"{name}: unsupported image mode {image.mode} ({err})") from None
