"""Helpers of the data tests: the small data configuration and readers of the generated files."""
import contextlib
import json
import os
import signal
import threading
import time

import mindspore.dataset as ds
import numpy as np

from conftest import SMALL_RES, SYNTHETIC_CLASSES
from src.dataset import mindrecord_files

# Small inputs and few classes keep the transform and pipeline tests fast.
SMALL = {"dataset_config.input_res_train": SMALL_RES, "dataset_config.num_classes": SYNTHETIC_CLASSES,
         "dataset_config.max_objs": 16}


def load_json(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def mindrecord_rows(mindrecord_dir, prefix=None):
    """{image_id: row dict} of a converted dataset."""
    data = ds.MindDataset(mindrecord_files(mindrecord_dir, prefix), shuffle=False)
    return {int(r["image_id"]): r for r in data.create_dict_iterator(output_numpy=True, num_epochs=1)}


def huge_png(path, width, height):
    """A valid 1-bit black PNG of width x height written without holding its pixels (20000x20000: 0.2 MB, 0.3 s)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(1)
    body = [packer.compress(row * 1000) for _ in range(height // 1000)]
    body += [packer.compress(row * (height % 1000)), packer.flush()]
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                + chunk(b"IDAT", b"".join(body)) + chunk(b"IEND", b""))
    return str(path)


def exif_jpeg(path, image_bgr, orientation=6):
    """Write a BGR uint8 array as a JPEG whose EXIF orientation tag (0x0112) is ``orientation`` (6: turn 90 degrees
    clockwise to display); the pixels are stored as given."""
    from PIL import Image
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1])).save(str(path), quality=95, exif=exif)
    return str(path)


@contextlib.contextmanager
def no_hang(seconds=5):
    """Fail instead of hanging: SIGALRM interrupts a blocking open() or read() of the main thread."""
    def on_alarm(signum, frame):
        raise TimeoutError("blocked for %d s" % seconds)
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def fifo_released_after(path, seconds=5):
    """Inside the block, a reader blocked on the FIFO ``path`` (a regression) gets an empty read after ``seconds``
    instead of hanging the test forever (for reads in threads, which SIGALRM cannot interrupt)."""
    done = threading.Event()

    def release():
        if done.wait(seconds):
            return
        while not done.is_set():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader yet
                time.sleep(0.05)
    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
