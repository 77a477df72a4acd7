"""src/data/image_file.py: regular files only, bounded reads, the pixel limit from the header, stored orientation."""
import os

import cv2
import numpy as np
import pytest

from data_helpers import exif_jpeg, huge_png, no_hang
from src.data import image_file as F

LIMITS = F.image_limits()


def test_read_image_handles_gray_and_alpha_and_reports_bad_files(tmp_path):
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((5, 7), 90, np.uint8))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.dstack([np.full((4, 6), v, np.uint8) for v in (1, 2, 3, 0)]))
    assert F.read_image(str(gray), LIMITS).shape == (5, 7, 3) and (F.read_image(str(gray), LIMITS) == 90).all()
    np.testing.assert_array_equal(F.read_image(str(rgba), LIMITS)[0, 0], [1, 2, 3])
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        F.read_image(str(tmp_path / "nothere.jpg"), LIMITS)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8garbage")
    with pytest.raises(ValueError, match="bad.jpg"):
        F.read_image(str(bad), LIMITS)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        F.read_image(str(empty), LIMITS)


def test_fifo_device_folder_and_symlink_to_a_fifo_are_refused_at_once(tmp_path):
    """Bad input: an image path that is a FIFO (a stalled network file), a symlink to one, /dev/zero or a folder | refused at once: '<path> is a FIFO (named pipe), not a regular file'."""
    fifo = tmp_path / "stalled.jpg"
    os.mkfifo(fifo)
    link = tmp_path / "link.jpg"
    link.symlink_to(fifo)
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    cases = [(fifo, "a FIFO"), (link, "a FIFO"), ("/dev/zero", "a character device"), (folder, "a folder")]
    with no_hang():
        for path, kind in cases:
            with pytest.raises(F.ImageFileError, match="%s is %s.*not a regular file" % (path, kind)) as err:
                F.read_image(str(path), LIMITS)
            assert err.value.reason == F.NOT_REGULAR
            assert F.file_problem(str(path)).startswith(kind)
            assert F.file_header_size(str(path)) is None


def test_a_file_turned_into_a_fifo_after_the_type_check_is_refused(tmp_path, monkeypatch):
    """Fault: an image file replaced by a FIFO between the type check and the open | refused at once, not a hang."""
    fifo = tmp_path / "swapped.jpg"
    os.mkfifo(fifo)
    regular = tmp_path / "regular.jpg"
    regular.write_bytes(b"x")
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: real_stat(regular if str(path) == str(fifo) else path))
    with no_hang(), pytest.raises(F.ImageFileError, match="swapped.jpg is a FIFO"):
        F.read_image(str(fifo), LIMITS)


def test_a_file_over_max_image_mb_is_refused_unread(tmp_path):
    """Bad input: an image file over dataset_config.max_image_mb | '<path> is 1.0 MB, over dataset_config.max_image_mb=1: raise it'."""
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * ((1 << 20) + 1))
    with pytest.raises(F.ImageFileError, match="big.png is 1.0 MB, over dataset_config.max_image_mb=1") as err:
        F.read_image(str(big), F.ImageLimits(LIMITS.max_pixels, 1 << 20))
    assert err.value.reason == F.TOO_MANY_BYTES


def test_a_20000x20000_png_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    """Bad input: a 0.2 MB PNG of 20000x20000 pixels | refused before decoding: 'is 20000x20000 (400.0 megapixels), over dataset_config.max_image_pixels=64000000'."""
    path = huge_png(tmp_path / "huge.png", 20000, 20000)
    assert os.path.getsize(path) < LIMITS.max_bytes and LIMITS.max_pixels == 64000000
    assert F.file_header_size(path) == (20000, 20000)

    def no_decoding(*args):
        raise AssertionError("decoded before the pixel limit was checked")
    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    with pytest.raises(F.ImageFileError, match=r"huge.png is 20000x20000 \(400.0 megapixels\), over "
                                               r"dataset_config.max_image_pixels=64000000") as err:
        F.read_image(path, LIMITS)
    assert err.value.reason == F.TOO_MANY_PIXELS


def test_an_exif_rotated_jpeg_is_read_in_its_stored_orientation(tmp_path):
    """Bad input: a JPEG with EXIF orientation 6 | read as stored (as COCO annotates it), not turned upright."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[5:15, 10:30] = 255
    path = exif_jpeg(tmp_path / "turned.jpg", stored)
    image = F.read_image(path, LIMITS)
    assert image.shape == (40, 80, 3) and F.file_header_size(path) == (80, 40)
    assert image[10, 20].min() > 200 and image[30, 60].max() < 50
