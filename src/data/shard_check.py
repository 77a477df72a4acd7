"""The integrity of converted MindRecord files: the converter's checksum manifest and the readers' check of it.

MindSpore's MindRecord reader trusts its files: a flipped byte in a shard's page can end the
process in a segmentation fault, a truncated shard in an internal error naming no file. So the
converter records, in the dataset's meta sidecar (written last, atomically with the shards),
the size and CRC-32 of every file it wrote (each shard and its ``.db`` index):

    "manifest": {"algorithm": "crc32", "files": {"coco_det.train.mind0": {"size": ..., "crc32": "1a2b3c4d"}, ...}}

and every reader (``src.data.mindrecord.mindrecord_files``) checks the files before MindSpore
opens them: the sizes always (one stat per file), the checksums once per file version. A file
whose checksum matched is recorded in ``<prefix>.verified.json`` beside the shards with its
size, mtime_ns and inode, so a rerun on unchanged files only stats them; a changed, replaced
or copied file is hashed again. When the folder is read-only the record is kept in the
process only, and the next run hashes again. CRC-32 (zlib) is the fastest checksum of the
standard library on these machines (docs/DATASET.md) and misses a random corruption with
probability 2^-32 (a burst of up to 32 bits never): it guards against accidents, not tampering.

A dataset without a manifest (converted by an older version, or MindRecord made by another
tool) is read unverified after a warning.
"""
import concurrent.futures
import json
import logging
import os
import time
import zlib

from src.model_utils.file_io import write_json_atomic

LOGGER = logging.getLogger(__name__)

ALGORITHM = "crc32"
VERIFIED_SUFFIX = ".verified.json"
_CHUNK = 8 << 20
_HASH_THREADS = 4            # zlib.crc32 releases the GIL: files are hashed in parallel
_VERIFIED = {}               # path -> stamp of the file versions checked by this process
_WARNED = set()              # datasets already reported as lacking a manifest


class ShardError(ValueError):
    """A converted MindRecord file does not match what its conversion wrote."""


def file_crc32(path):
    """The CRC-32 of the file ``path`` as 8 hex digits, read in chunks (flat memory)."""
    crc, buf = 0, bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(view)
            if not n:
                return "%08x" % crc
            crc = zlib.crc32(view[:n], crc)


def _hash_all(paths):
    """{path: crc32} of ``paths``, hashed by up to _HASH_THREADS threads."""
    threads = max(1, min(_HASH_THREADS, os.cpu_count() or 1, len(paths)))
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return dict(zip(paths, pool.map(file_crc32, paths)))


def dataset_file_names(shard_names):
    """The files MindSpore reads for these shards: each shard and its ``.db`` index."""
    return [n for shard in shard_names for n in (shard, shard + ".db")]


def make_manifest(folder, names):
    """The manifest of the files ``names`` in ``folder``: algorithm, and each file's size and checksum."""
    paths = [os.path.join(folder, n) for n in names]
    crcs = _hash_all(paths)
    return {"algorithm": ALGORITHM,
            "files": {n: {"size": os.path.getsize(p), ALGORITHM: crcs[p]} for n, p in zip(names, paths)}}


def verified_path(mindrecord_dir, prefix):
    """The record of the file versions whose checksums matched (``<prefix>.verified.json``)."""
    return os.path.join(mindrecord_dir, prefix + VERIFIED_SUFFIX)


def _read_stamps(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            stamps = json.load(f)
        return stamps if isinstance(stamps, dict) else {}
    except (OSError, ValueError):  # absent or damaged: the files are hashed again
        return {}


def _reconvert(mindrecord_dir):
    return "re-convert the dataset with src/dataset.py --overwrite=true (mindrecord_dir %s)" % mindrecord_dir


def verify_dataset(mindrecord_dir, prefix, meta, meta_file):
    """Check the files of a converted dataset against the manifest in its ``meta`` (read from ``meta_file``).

    Raises ShardError naming the first missing, resized or corrupt file; warns once when
    there is no manifest. Returns the number of files hashed by this call.
    """
    manifest = (meta or {}).get("manifest")
    if manifest is None:
        key = (os.path.abspath(mindrecord_dir), prefix)
        if key not in _WARNED:
            _WARNED.add(key)
            LOGGER.warning("MindRecord dataset %s* has no checksum manifest (converted by an older src/dataset.py "
                           "or another tool): its files are read unchecked, and a damaged shard can crash the "
                           "reader; re-convert it with src/dataset.py to have them checked",
                           os.path.join(mindrecord_dir, prefix))
        return 0
    if manifest.get("algorithm") != ALGORITHM:
        raise ShardError("%s: unknown checksum algorithm %r in its manifest (this version checks %s): %s"
                         % (meta_file, manifest.get("algorithm"), ALGORITHM, _reconvert(mindrecord_dir)))
    stamps_file = verified_path(mindrecord_dir, prefix)
    stamps = _read_stamps(stamps_file)
    pending = {}
    for name, want in manifest["files"].items():
        path = os.path.join(mindrecord_dir, name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise ShardError("MindRecord file %s, listed in %s, is missing: %s"
                             % (path, meta_file, _reconvert(mindrecord_dir))) from None
        if st.st_size != want["size"]:
            raise ShardError("MindRecord file %s has %d bytes but its conversion wrote %d (truncated or changed "
                             "since): %s" % (path, st.st_size, want["size"], _reconvert(mindrecord_dir)))
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino, want[ALGORITHM]]
        if _VERIFIED.get(os.path.abspath(path)) != stamp and stamps.get(name) != stamp:
            pending[path] = (name, stamp)
    if not pending:
        return 0
    start = time.perf_counter()
    nbytes = sum(stamp[0] for _, stamp in pending.values())
    LOGGER.info("checking %d MindRecord files (%.1f MB) against %s (once per file version)",
                len(pending), nbytes / 2 ** 20, os.path.basename(meta_file))
    crcs = _hash_all(list(pending))
    for path, (name, stamp) in pending.items():
        if crcs[path] != stamp[3]:
            raise ShardError("MindRecord file %s is corrupt: its %s is %s but its conversion wrote %s: %s"
                             % (path, ALGORITHM, crcs[path], stamp[3], _reconvert(mindrecord_dir)))
        _VERIFIED[os.path.abspath(path)] = stamp
        stamps[name] = stamp
    LOGGER.info("MindRecord files match their manifest (%.1f s)", time.perf_counter() - start)
    try:
        write_json_atomic(stamps_file, stamps)
    except OSError as err:
        LOGGER.info("cannot record the check in %s (%s): the next run checks the files again",
                    stamps_file, err.strerror or err)
    return len(pending)
