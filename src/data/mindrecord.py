"""The layout of a converted dataset: MindRecord schema, shard names and the meta sidecar.

``src/dataset.py`` writes it (COCO -> MindRecord), the training pipeline
(``src.data.train_data``), the trainer and the training log read it.
"""
import json
import os
import re

from src.data.coco import DataError
from src.data.shard_check import verify_dataset

META_SUFFIX = ".meta.json"
SCHEMA = {
    "image": {"type": "bytes"},
    "image_id": {"type": "int64"},
    "bboxes": {"type": "float32", "shape": [-1, 4]},
    "category_id": {"type": "int32", "shape": [-1]},
    "iscrowd": {"type": "int32", "shape": [-1]},
}


def configured_prefix(prefix=None):
    """``prefix``, or when none is given the ``mindrecord_prefix`` of default_config.yaml."""
    if prefix:
        return prefix
    from src.model_utils.config import DEFAULT_CONFIG_PATH, load_yaml
    return load_yaml(DEFAULT_CONFIG_PATH)[0]["mindrecord_prefix"]


def meta_path(mindrecord_dir, prefix):
    """The sidecar of dataset ``prefix``: written last, so its presence means the shards are complete."""
    return os.path.join(mindrecord_dir, prefix + META_SUFFIX)


def over_max_objs(objects_per_image, max_objs):
    """(images with more than ``max_objs`` objects, objects beyond the limit) of a {count: images} histogram."""
    over = {int(n): int(k) for n, k in objects_per_image.items() if int(n) > max_objs}
    return sum(over.values()), sum((n - max_objs) * k for n, k in over.items())


def read_meta(mindrecord_dir, prefix=None):
    """The sidecar meta dict of a converted dataset, or None when the dataset has none."""
    path = meta_path(mindrecord_dir, configured_prefix(prefix))
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except ValueError as err:
        raise ValueError("malformed MindRecord meta file %s: %s" % (path, err)) from err


def mindrecord_files(mindrecord_dir, prefix=None):
    """Ordered shard paths of dataset ``prefix`` in ``mindrecord_dir`` (from the meta file if any).

    Every reader of a converted dataset gets its files here, checked against the conversion's
    checksum manifest (src.data.shard_check.verify_dataset) before MindSpore opens them.
    """
    prefix = configured_prefix(prefix)
    if not os.path.isdir(mindrecord_dir):
        raise FileNotFoundError("MindRecord folder not found: %s" % mindrecord_dir)
    meta = read_meta(mindrecord_dir, prefix)
    if meta is not None:
        files = [os.path.join(mindrecord_dir, n) for n in meta["files"]]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise FileNotFoundError("MindRecord shard %s listed in %s is missing"
                                    % (missing[0], meta_path(mindrecord_dir, prefix)))
        verify_dataset(mindrecord_dir, prefix, meta, meta_path(mindrecord_dir, prefix))
        return files
    pattern = re.compile(r"^%s(\d*)$" % re.escape(prefix))
    found = sorted(((int(m.group(1) or -1), n) for n in os.listdir(mindrecord_dir)
                    for m in [pattern.match(n)] if m))
    if not found:
        raise FileNotFoundError("no MindRecord files with prefix %r in %s (convert COCO with src/dataset.py first)"
                                % (prefix, mindrecord_dir))
    verify_dataset(mindrecord_dir, prefix, None, None)
    return [os.path.join(mindrecord_dir, n) for _, n in found]


def dataset_size(mindrecord_dir, prefix=None):
    """Number of rows (images) of a converted dataset."""
    import mindspore.dataset as ds
    files = mindrecord_files(mindrecord_dir, prefix)
    try:
        return ds.MindDataset(files, columns_list=["image_id"], shuffle=False).get_dataset_size()
    except RuntimeError as err:
        clear = pipeline_error(err, mindrecord_dir)
        if clear is None:
            raise
        raise clear from err


_PYTHON_ERROR = re.compile(r"^(?:\w+\.)*\w+(?:Error|Exception): (.+)$")
_PIPELINE_HEADING = "- Dataset Pipeline Error Message:"
_WRAPPERS = ("Exception thrown from", "Execute user Python code failed")  # MindSpore's words around a cause


def pipeline_error(err, mindrecord_dir):
    """A one-line DataError for the RuntimeError of a failed MindSpore data pipeline, None for other errors.

    MindSpore wraps what failed (a Python exception of a transform, or its own reader's error)
    in a multi-line report with call stacks; the cause is the report's last Python exception
    line, else its first ``[ERROR]`` line, MindSpore's own wrapping words left out.
    """
    text = str(err)
    if _PIPELINE_HEADING not in text:
        return None
    python_part, _, pipeline_part = text.partition(_PIPELINE_HEADING)
    causes = [m.group(1).strip() for m in map(_PYTHON_ERROR.match, python_part.splitlines()) if m]
    causes = [c for c in causes if not c.startswith(_WRAPPERS)]
    if not causes:
        errors = [re.sub(r"^(\[[^]]*\]\s*)+", "", ln.strip()) for ln in pipeline_part.splitlines()
                  if ln.strip().startswith("[ERROR]")]
        causes = [c for c in errors if c and not c.startswith(_WRAPPERS)][:1] or ["MindSpore gave no cause"]
    return DataError("reading the MindRecord dataset in %s failed: %s; re-convert the dataset with src/dataset.py "
                     "--overwrite=true" % (mindrecord_dir, causes[-1].rstrip(".")))

