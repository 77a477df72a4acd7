"""The one reader of image files: regular files only, read with a bound, sized from the header, stored orientation.

Every command that reads images goes through it: the MindRecord converter (src/dataset.py),
evaluation and detection (src/infer/detect.py, src/infer/folder.py), preprocess.py, and the
training decode of the converted bytes (src/data/train_targets.py, ``decode_image``).

- Only a regular file is opened (a FIFO standing in for a stalled network file, a device or a
  folder would block or never end); the type is checked before opening and again on the open
  descriptor, so a file swapped in between (or a symlink to a FIFO) is refused too.
- At most ``dataset_config.max_image_mb`` are read.
- The width and height come from the header (PIL reads no pixels) and are checked against
  ``dataset_config.max_image_pixels`` before anything is decoded.
- Images decode in their stored orientation, as COCO annotates them: cv2 otherwise applies
  the EXIF orientation tag, which turns a portrait JPEG away from its boxes and from the json's
  width and height.
"""
import collections
import io
import os
import stat

import cv2
import numpy as np
from PIL import Image

# 3-channel BGR (grayscale expanded, alpha dropped) in the stored orientation.
DECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION

# max_image_pixels is this project's decompression-bomb limit; PIL only reads headers here, and its
# own limit (178 megapixels raises) would refuse images that the configuration allows.
Image.MAX_IMAGE_PIXELS = None

# The files an image folder's listing takes (tools/detect_images.py, int8 calibration from a folder).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# The short reasons of ImageFileError (the converter counts skipped images by reason).
NOT_REGULAR, TOO_MANY_BYTES, TOO_MANY_PIXELS, UNDECODABLE = (
    "not a regular file", "over max_image_mb", "over max_image_pixels", "undecodable")

ImageLimits = collections.namedtuple("ImageLimits", ["max_pixels", "max_bytes"])
ImageLimits.__doc__ = "Bounds of one image: pixels (width * height, from the header) and bytes read."


class ImageFileError(ValueError):
    """An image file that is not read or decoded; ``reason`` is one of the short reasons above."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


def image_limits(cfg=None):
    """ImageLimits of a configuration (default_config.yaml's values when ``cfg`` is None)."""
    if cfg is None:
        from src.model_utils.config import DEFAULT_CONFIG_PATH, load_yaml
        ds = load_yaml(DEFAULT_CONFIG_PATH)[0]["dataset_config"]
        pixels, megabytes = ds["max_image_pixels"], ds["max_image_mb"]
    else:
        pixels, megabytes = cfg.dataset_config.max_image_pixels, cfg.dataset_config.max_image_mb
    return ImageLimits(int(pixels), int(megabytes) << 20)


def file_kind(mode):
    """What a non-regular file is, in words ('a FIFO (named pipe)', 'a folder', ...)."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _not_regular(path, mode):
    return ImageFileError("%s is %s, not a regular file: give image files only" % (path, file_kind(mode)),
                          NOT_REGULAR)


def file_problem(path):
    """None for an existing regular file, else 'missing' or what it is ('a FIFO (named pipe)', ...)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return "unreadable (%s)" % err.strerror
    return None if stat.S_ISREG(mode) else file_kind(mode)


def _open_regular(path):
    """A binary file object of ``path`` after checking, before and after opening, that it is a regular file.

    The first check keeps a FIFO or device from ever being opened; opening with O_NONBLOCK and
    checking the descriptor closes the race of a file replaced in between (a FIFO opened that
    way returns at once instead of waiting for a writer).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as err:
        raise FileNotFoundError("image not found: %s" % path) from err
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_regular(path, info.st_mode)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def read_file_bounded(path, max_bytes):
    """The bytes of the regular file ``path``; ImageFileError beyond ``max_bytes``."""
    f, size = _open_regular(path)
    with f:
        if size <= max_bytes:
            data = f.read(max_bytes + 1)
    if size > max_bytes or len(data) > max_bytes:
        raise ImageFileError("%s is %.1f MB, over dataset_config.max_image_mb=%d: raise it to read this file"
                             % (path, max(size, max_bytes + 1) / 2 ** 20, max_bytes >> 20), TOO_MANY_BYTES)
    return data


def header_size(data):
    """(width, height) in the stored orientation from an encoded image's header, or None when unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return tuple(int(v) for v in image.size)
    except Exception:  # noqa: BLE001  (any header PIL cannot parse: the caller reports the image as undecodable)
        return None


def file_header_size(path):
    """(width, height) from the header of the regular file ``path`` (PIL reads no pixels), or None."""
    try:
        f, _ = _open_regular(path)
    except (OSError, ValueError):
        return None
    with f:
        try:
            with Image.open(f) as image:
                return tuple(int(v) for v in image.size)
        except Exception:  # noqa: BLE001  (unreadable header: the read of the image reports it)
            return None


def check_pixels(path, size, max_pixels):
    """ImageFileError when a (width, height) image holds more than ``max_pixels`` pixels."""
    width, height = size
    if width * height > max_pixels:
        raise ImageFileError("%s is %dx%d (%.1f megapixels), over dataset_config.max_image_pixels=%d: raise it "
                             "to read this image" % (path, width, height, width * height / 1e6, max_pixels),
                             TOO_MANY_PIXELS)


def read_encoded(path, limits):
    """(encoded bytes, (width, height) from the header) of an image file, within ``limits``.

    Raises FileNotFoundError when absent, ImageFileError when not a regular file, over a limit,
    empty or without a readable header.
    """
    data = read_file_bounded(path, limits.max_bytes)
    size = header_size(data)
    if size is None:
        raise ImageFileError("cannot decode image %s (%s)" % (path, "empty file" if not data else
                                                               "corrupt or unsupported format"), UNDECODABLE)
    check_pixels(path, size, limits.max_pixels)
    return data, size


def decode_image(data, what):
    """Encoded bytes -> 3-channel BGR uint8 array in the stored orientation; ImageFileError naming ``what``."""
    buffer = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else data
    image = cv2.imdecode(buffer, DECODE_FLAGS) if buffer.size else None
    if image is None:
        raise ImageFileError("cannot decode image %s (%s)" % (what, "empty file" if not buffer.size else
                                                               "corrupt or unsupported format"), UNDECODABLE)
    return image


def read_image(path, limits):
    """Read an image file as a 3-channel BGR uint8 array in its stored orientation, within ``limits``."""
    data, _ = read_encoded(path, limits)
    return decode_image(data, path)


def list_image_files(image_dir):
    """Sorted names of the image files (``IMAGE_EXTENSIONS``) in ``image_dir``; a one-line error when there are none.

    Non-regular entries named like images are listed: reading them is refused, by name, as for any image.
    """
    if not os.path.isdir(image_dir):
        raise FileNotFoundError("image folder not found: %s" % image_dir)
    names = sorted(n for n in os.listdir(image_dir) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise ValueError("no images (%s) in %s" % ("/".join(e[1:] for e in IMAGE_EXTENSIONS), image_dir))
    return names
