"""The data entry: COCO -> MindRecord conversion (a command and a function) and the converted dataset.

``python src/dataset.py --coco_data_dir D --mindrecord_dir M`` (also a ModelArts startup
file) stores, per image, the original encoded bytes, ``image_id``, ``bboxes`` (n, 4) float32
x1y1x2y2 pixels, ``category_id`` (n,) int32 contiguous class indices and ``iscrowd`` (n,)
int32, in shards ``<prefix>0..N-1`` plus a sidecar ``<prefix>.meta.json`` describing the
classes (``mindrecord_prefix`` in default_config.yaml). The layout and its readers
(``mindrecord_files``, ``dataset_size``, ``read_meta``, exposed here too) are
src/data/mindrecord.py; the training pipeline that reads them is src/data/train_data.py
(``create_train_dataset``, exposed here as the original's dataloader entry).
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install(preload=("mindspore.mindrecord",))  # imported while signals are held

import collections  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from src.data.coco import DROP_REASONS, TRAIN_LAYOUT, CocoData, DataError  # noqa: E402
from src.data.image_file import (UNDECODABLE, ImageFileError, check_pixels, header_size,  # noqa: E402
                                 image_limits, read_file_bounded)
from src.data.mindrecord import (META_SUFFIX, SCHEMA, configured_prefix, dataset_size,  # noqa: E402, F401
                                 meta_path, mindrecord_files, over_max_objs, read_meta)  # (the data entry)
from src.data.shard_check import VERIFIED_SUFFIX, dataset_file_names, make_manifest  # noqa: E402
from src.data.train_data import create_train_dataset  # noqa: E402, F401  (the data entry, as the original's)
from src.model_utils.file_io import (disk_full_error, prepare_output_folder, publish_folder,  # noqa: E402
                                     remove_stale_temporaries, temporary_folder)

LOGGER = logging.getLogger(__name__)

CHUNK_IMAGES = 32            # images per worker task and per FileWriter call
CHUNK_BYTES = 64 << 20       # flush rows to the writer past this many image bytes
SIZE_MISMATCH = "size differs from the json"
WRITER_MIN_FREE = 10 << 20   # MindSpore's FileWriter stops with less free (8 MB refused, 11 MB taken: measured, 2.8.0)


# ----------------------------------------------------------------------------- conversion

def read_and_check(path, listed_size, limits):
    """Read one image file for the converter: (bytes or None, skip reason or None, message or None).

    The file is read through src/data/image_file.py (a regular file, at most ``limits.max_bytes``).
    Skipped, with a short reason (the summary counts them) and a message naming the file: missing,
    unreadable, not a regular file, over max_image_mb, empty, undecodable, or of another size
    than the json's (width, height) ``listed_size`` (its boxes would describe another picture;
    sizes are compared in the stored orientation, in which COCO annotates and training decodes).
    An image over ``limits.max_pixels`` is kept, with a warning message: training resizes it.
    """
    try:
        data = read_file_bounded(path, limits.max_bytes)
    except FileNotFoundError:
        return None, "missing", "%s is missing" % path
    except ImageFileError as err:
        return None, err.reason, str(err)
    except OSError as err:
        return None, "unreadable (%s)" % err.strerror, "%s is unreadable (%s)" % (path, err.strerror)
    if not data:
        return None, "empty file", "%s is an empty file" % path
    size = header_size(data)
    flags = cv2.IMREAD_REDUCED_GRAYSCALE_8 | cv2.IMREAD_IGNORE_ORIENTATION
    if size is None or cv2.imdecode(np.frombuffer(data, np.uint8), flags) is None:
        return None, UNDECODABLE, "%s is undecodable (corrupt or unsupported format)" % path
    if all(listed_size) and tuple(int(v) for v in listed_size) != size:
        return None, SIZE_MISMATCH, ("%s is %dx%d but the json gives %sx%s: its boxes would describe another picture; "
                                     "fix the json's width/height or the image" % ((path,) + size + listed_size))
    try:
        check_pixels(path, size, limits.max_pixels)
    except ImageFileError as err:
        return data, None, "%s (kept: training resizes it)" % err
    return data, None, None


def _read_chunk(items, limits):
    return [read_and_check(path, size, limits) for path, size in items]


def _worker_init():
    """Pool worker set-up: end with the parent, quietly.

    Ctrl-C reaches the whole process group: the parent alone handles it and terminates the
    pool. A parent killed outright (SIGKILL) makes the kernel send SIGTERM to the workers
    (PR_SET_PDEATHSIG on Linux), whose default action ends them without a traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(0)


def _chunked_results(items, limits, pool, workers):
    """Yield read_and_check results of (path, listed size) items in order; at most 2 * workers chunks in flight."""
    chunks = [items[i:i + CHUNK_IMAGES] for i in range(0, len(items), CHUNK_IMAGES)]
    if pool is None:
        for chunk in chunks:
            yield from _read_chunk(chunk, limits)
        return
    pending = collections.deque()
    for chunk in chunks:
        pending.append(pool.apply_async(_read_chunk, (chunk, limits)))
        if len(pending) >= 2 * workers:
            yield from pending.popleft().get()
    while pending:
        yield from pending.popleft().get()


def estimated_nbytes(images, image_dir):
    """About the free bytes converting ``images`` needs: their files' sizes, the index of each row and the
    space MindSpore's writer insists on keeping free."""
    total = 0
    for image in images:
        try:
            total += os.stat(os.path.join(image_dir, image["file_name"])).st_size
        except OSError:
            continue  # skipped when read, with its reason
    return total + 1024 * len(images) + WRITER_MIN_FREE


def _make_row(image, data, objects, cat_index):
    boxes = np.array([o[:4] for o in objects], np.float32).reshape(-1, 4)
    return {"image": data, "image_id": image["id"], "bboxes": boxes,
            "category_id": np.array([cat_index[o[4]] for o in objects], np.int32),
            "iscrowd": np.array([o[5] for o in objects], np.int32)}


def existing_outputs(mindrecord_dir, prefix):
    """Paths in ``mindrecord_dir`` that belong to the dataset ``prefix`` (shards, .db, meta, verification record)."""
    if not os.path.isdir(mindrecord_dir):
        return []
    pattern = re.compile(r"^%s(\d+)?(\.db)?$" % re.escape(prefix))
    return sorted(os.path.join(mindrecord_dir, n) for n in os.listdir(mindrecord_dir)
                  if pattern.match(n) or n in (prefix + META_SUFFIX, prefix + VERIFIED_SUFFIX))


def _write_shards(tmp_dir, prefix, shards, images, anns_by_image, cat_index, image_dir, workers, limits):
    """Write all rows into ``tmp_dir``: (num_written, skipped list, objects per written image, images over pixels)."""
    from mindspore.mindrecord import FileWriter
    from tqdm import tqdm
    writer = FileWriter(os.path.join(tmp_dir, prefix), shard_num=shards, overwrite=True)
    writer.add_schema(SCHEMA, "centernet coco detection")
    writer.add_index(["image_id"])
    paths = [os.path.join(image_dir, i["file_name"]) for i in images]
    items = [(p, (i.get("width"), i.get("height"))) for p, i in zip(paths, images)]
    rows, row_bytes, written, objects, skipped, large = [], 0, 0, [], [], 0
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=_worker_init) if workers > 1 else None
    try:
        with tqdm(total=len(images), unit="img", desc="convert", disable=None, mininterval=1.0) as bar:
            for image, path, (data, reason, message) in zip(images, paths,
                                                            _chunked_results(items, limits, pool, workers)):
                bar.update(1)
                if data is None:
                    LOGGER.warning("skipping image %d: %s", image["id"], message)
                    skipped.append({"image_id": image["id"], "file": path, "reason": reason})
                    continue
                if message:
                    LOGGER.warning("image %d: %s", image["id"], message)
                    large += 1
                objs = anns_by_image.get(image["id"], [])
                rows.append(_make_row(image, data, objs, cat_index))
                row_bytes += len(data)
                objects.append(len(objs))
                if len(rows) >= CHUNK_IMAGES or row_bytes >= CHUNK_BYTES:
                    writer.write_raw_data(rows)
                    written += len(rows)
                    rows, row_bytes = [], 0
    finally:
        if pool is not None:
            pool.terminate()
    if written + len(rows) == 0:
        raise RuntimeError("no readable image among the %d listed for %s" % (len(images), image_dir))
    if rows:
        writer.write_raw_data(rows)
        written += len(rows)
    writer.commit()
    return written, skipped, objects, large


def _summary(prefix, shards, categories, written, objects, skipped, stats, ann_file, image_dir, max_objs):
    """The conversion summary, also stored as the <prefix>.meta.json sidecar.

    ``objects``: the object count of each written image; its histogram is stored so that
    training can count the objects beyond its own dataset_config.max_objs.
    """
    histogram = {str(n): k for n, k in sorted(collections.Counter(objects).items())}
    images_over, objects_over = over_max_objs(histogram, max_objs)
    return {
        "prefix": prefix, "shards": shards,
        "files": [prefix] if shards == 1 else ["%s%d" % (prefix, i) for i in range(shards)],
        "categories": [{"index": k, "id": c["id"], "name": c["name"]} for k, c in enumerate(categories)],
        "num_classes": len(categories), "num_images": written, "num_objects": sum(objects),
        "objects_per_image": histogram, "max_objs": max_objs, "images_over_max_objs": images_over,
        "objects_over_max_objs": objects_over,
        "num_skipped": len(skipped), "skipped_reasons": dict(collections.Counter(s["reason"] for s in skipped)),
        "skipped": skipped, "num_dropped_annotations": sum(stats["dropped_annotations"].values()),
        "dropped_annotations": stats["dropped_annotations"],
        "ann_file": os.path.abspath(ann_file), "image_dir": os.path.abspath(image_dir),
    }


def load_coco(ann_file, image_dir):
    """The converter's view of a COCO json: (categories, images, {image_id: objects}, stats).

    Only these plain values outlive the call, so the parsed document is freed before the
    images are read.
    """
    data = CocoData(ann_file, image_dir)
    data.check_image_dir()
    if not data.images:
        raise DataError("%s lists no images" % ann_file)
    anns_by_image, stats = data.objects_by_image()
    return data.categories, data.images, anns_by_image, stats


def coco_to_mindrecord(ann_file, image_dir, mindrecord_dir, prefix=None, shards=8, workers=0, overwrite=False,
                       max_objs=None, limits=None):
    """Convert a COCO-format detection set to MindRecord shards; returns a summary dict.

    The output folder is checked first (writable, room for about the images' bytes).
    Images are read as ``read_and_check`` says, within ``limits`` (src/data/image_file.py's
    ImageLimits; default: the yaml's). Unreadable/missing/undecodable images, anything not a
    regular file, and images whose size differs from the json's are skipped and counted
    (``skipped``); images over the pixel limit are kept and counted; non-finite,
    zero-size and out-of-image boxes dropped and counted by reason; images with more than
    ``max_objs`` objects (default: the yaml's dataset_config.max_objs) counted. The size and
    checksum of every file written go into the meta sidecar (src/data/shard_check.py), which
    every reader checks. Output appears
    atomically: rows are written in a temporary folder inside ``mindrecord_dir`` and moved into
    place when complete; the folders of killed conversions of the same prefix are removed.
    """
    start = time.time()
    prefix = configured_prefix(prefix)
    if max_objs is None:
        from src.model_utils.config import DEFAULT_CONFIG_PATH, load_yaml
        max_objs = load_yaml(DEFAULT_CONFIG_PATH)[0]["dataset_config"]["max_objs"]
    limits = limits or image_limits()
    categories, images, anns_by_image, stats = load_coco(ann_file, image_dir)
    clash = existing_outputs(mindrecord_dir, prefix)
    if clash and not overwrite:
        raise FileExistsError("MindRecord dataset %r already exists in %s (%s); pass overwrite to replace it"
                              % (prefix, mindrecord_dir, clash[0]))
    shards = max(1, min(int(shards), len(images)))
    workers = int(workers) or os.cpu_count() or 1
    cat_index = {c["id"]: k for k, c in enumerate(categories)}
    created = not os.path.isdir(mindrecord_dir)
    need = estimated_nbytes(images, image_dir)
    try:
        prepare_output_folder(mindrecord_dir, "--mindrecord_dir", need=need)
    except OSError:
        if created and os.path.isdir(mindrecord_dir) and not os.listdir(mindrecord_dir):
            os.rmdir(mindrecord_dir)
        raise
    stale = remove_stale_temporaries(mindrecord_dir, prefix)
    tmp_dir = temporary_folder(os.path.join(mindrecord_dir, prefix))
    try:
        try:
            written, skipped, objects, large = _write_shards(tmp_dir, prefix, shards, images, anns_by_image,
                                                             cat_index, image_dir, workers, limits)
        except RuntimeError as err:  # MindSpore's FileWriter reports a full disk so
            if "No free disk" not in str(err):
                raise
            shutil.rmtree(tmp_dir, ignore_errors=True)  # before measuring the space free
            raise disk_full_error(os.path.join(mindrecord_dir, prefix + "*"), need, what="MindRecord shards",
                                  setting="--mindrecord_dir") from err
        summary = _summary(prefix, shards, categories, written, objects, skipped, stats, ann_file, image_dir,
                           max_objs)
        summary["images_over_max_image_pixels"] = large
        summary["manifest"] = make_manifest(tmp_dir, dataset_file_names(summary["files"]))
        with open(meta_path(tmp_dir, prefix), "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
        if overwrite:
            for path in existing_outputs(mindrecord_dir, prefix):
                os.remove(path)
        publish_folder(tmp_dir, mindrecord_dir, last=os.path.basename(meta_path(tmp_dir, prefix)))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if created and not os.listdir(mindrecord_dir):
            os.rmdir(mindrecord_dir)
    seconds = time.time() - start
    summary.update(mindrecord_dir=os.path.abspath(mindrecord_dir), seconds=round(seconds, 3),
                   images_per_second=round(written / max(seconds, 1e-9), 1), stale_temporaries_removed=stale)
    LOGGER.info("wrote %d images (%d objects, %d skipped, %s) in %d shards to %s in %.1f s",
                written, summary["num_objects"], len(skipped), dropped_text(summary), shards, mindrecord_dir, seconds)
    if large:
        LOGGER.warning("%d images hold more than dataset_config.max_image_pixels=%d pixels (listed above): kept, "
                       "training resizes them; evaluation and detection skip such images", large, limits.max_pixels)
    if summary["images_over_max_objs"]:
        LOGGER.warning("%d images hold more than max_objs=%d objects: %d objects beyond the limit get no target",
                       summary["images_over_max_objs"], max_objs, summary["objects_over_max_objs"])
    return summary


def dropped_text(summary):
    """'dropped: 2 non-finite, 1 zero-size, 0 outside the image, 0 of unknown images'."""
    words = {"non_finite": "non-finite", "zero_size": "zero-size", "outside_image": "outside the image",
             "unknown_image": "of unknown images"}
    dropped = summary["dropped_annotations"]
    return "dropped: " + ", ".join("%d %s" % (dropped.get(k, 0), words[k]) for k in DROP_REASONS)


# ----------------------------------------------------------------------------- command line

def resolve_paths(cfg):
    """(ann_file, image_dir) from --train_ann_file/--train_image_dir or --coco_data_dir."""
    from src.model_utils.config import ConfigError
    if not cfg.mindrecord_dir:
        raise ConfigError("--mindrecord_dir is required")
    if not cfg.coco_data_dir and not (cfg.train_ann_file and cfg.train_image_dir):
        raise ConfigError("give --coco_data_dir, or both --train_ann_file and --train_image_dir")
    if cfg.coco_data_dir and not os.path.isdir(cfg.coco_data_dir):
        raise DataError("COCO folder not found: %s" % cfg.coco_data_dir)
    rel_ann, rel_images = TRAIN_LAYOUT
    ann_file = cfg.train_ann_file or os.path.join(cfg.coco_data_dir, rel_ann)
    image_dir = cfg.train_image_dir or os.path.join(cfg.coco_data_dir, rel_images)
    return ann_file, image_dir


def run_conversion(cfg):
    """The converter's job: convert, print the summary line, return the summary.

    On ModelArts (``enable_modelarts``) the COCO paths are taken below ``data_path`` (an empty
    ``coco_data_dir`` is ``data_path`` itself) and ``mindrecord_dir`` below ``output_path``,
    which is copied to ``train_url`` afterwards.
    """
    from src.model_utils.moxing_adapter import local_path
    explicit = bool(cfg.train_ann_file and cfg.train_image_dir)
    cfg.coco_data_dir = local_path(cfg, cfg.coco_data_dir, "data_path", keep_empty=explicit)
    cfg.train_ann_file = local_path(cfg, cfg.train_ann_file, "data_path", keep_empty=True)
    cfg.train_image_dir = local_path(cfg, cfg.train_image_dir, "data_path", keep_empty=True)
    cfg.mindrecord_dir = local_path(cfg, cfg.mindrecord_dir, "output_path")
    ann_file, image_dir = resolve_paths(cfg)
    summary = coco_to_mindrecord(ann_file, image_dir, cfg.mindrecord_dir, cfg.mindrecord_prefix,
                                 cfg.mindrecord_shards, cfg.convert_workers, cfg.overwrite,
                                 cfg.dataset_config.max_objs, image_limits(cfg))
    print("converted %d images (%d skipped: %s), %d objects (%s; %d images over max_objs=%d, %d objects beyond), "
          "%d classes -> %s/%s* (%d shards), %.1f images/s"
          % (summary["num_images"], summary["num_skipped"], summary["skipped_reasons"] or "none",
             summary["num_objects"], dropped_text(summary), summary["images_over_max_objs"], summary["max_objs"],
             summary["objects_over_max_objs"], summary["num_classes"], summary["mindrecord_dir"], summary["prefix"],
             summary["shards"], summary["images_per_second"]))
    for path in summary["stale_temporaries_removed"]:
        print("removed %s, left by a killed conversion" % path)
    return summary


def main(argv=None):
    from src.model_utils.entry import entry_main
    return entry_main("src/dataset.py", run_conversion, argv)


if __name__ == "__main__":
    sys.exit(main())
