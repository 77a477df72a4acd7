"""The training data pipeline: which rows each rank reads (``SamplePlan``) and the MindSpore dataset.

The sample order and every augmentation depend only on (seed, rank, sample position), so a
run resumes bit-for-bit at any step and the ranks of a data-parallel run read disjoint rows.
"""
import collections
import logging
import os

import numpy as np

from src.data.mindrecord import SCHEMA, meta_path, mindrecord_files, over_max_objs, read_meta
from src.data.train_targets import TrainTransform, sample_nbytes, train_columns

LOGGER = logging.getLogger(__name__)

# The stored MindRecord columns, then the sample position (the key of the sample's randomness).
SOURCE_COLUMNS = list(SCHEMA) + ["position"]
PREFETCH_BYTES = 512 << 20   # queued batches per pipeline stage (see _limit_prefetch)


class Cursor(collections.namedtuple("Cursor", "step epoch epoch_step epoch_samples")):
    """The data position after global step ``step``: 0-based ``epoch``, the steps of it done
    (``epoch_step``) and the images of its order read by the whole group (``epoch_samples``).

    A step is one optimizer update; its global batch is group_size x batch_size images. Only
    the image count is independent of the group size, so a resume with another group size
    continues the epoch from epoch_samples (src.data.train_data.SamplePlan).
    """

    __slots__ = ()


class SamplePlan:
    """Which row each sample position of one rank reads.

    Epoch e's order is default_rng([seed, e]).permutation(num_rows) (arange without
    shuffle). Each global step of the epoch reads the next group_size * batch_size entries of
    that order, rank r every group_size-th from r: rank r's epoch is perm[r::group_size] up to
    steps_per_epoch * batch_size entries (the group reads the order's first
    steps_per_epoch * batch_size * group_size; the rest is left out of the epoch). Position p
    of the run is rank-local sample p % batch_size of global step p // batch_size + 1.

    ``resume`` (a Cursor) starts the plan after a checkpoint, possibly written by another
    group size: the rest of its epoch, order[epoch_samples:epoch_len * group_size], is dealt
    the same way (rank r every group_size-th entry, as many whole global batches as it fills),
    then the following epochs are planned as above. The group reading a prefix of each
    epoch's order, no image of the interrupted epoch is read twice; only the tail that does
    not fill a global batch is left out, as in every epoch. Without a group-size change the
    plan is the uninterrupted run's.
    """

    def __init__(self, num_rows, batch_size, seed, rank=0, group_size=1, shuffle=True, resume=None):
        if not 0 <= rank < group_size:
            raise ValueError("rank %d outside group of %d" % (rank, group_size))
        self.num_rows, self.batch_size, self.seed = int(num_rows), int(batch_size), int(seed)
        self.rank, self.group_size, self.shuffle = int(rank), int(group_size), bool(shuffle)
        self.steps_per_epoch = (self.num_rows // self.group_size) // self.batch_size
        self.epoch_len = self.steps_per_epoch * self.batch_size
        self.resume = resume
        if resume is None:
            self.head_steps, self.first_epoch, self.first_step = 0, 0, 0
        else:
            global_batch = self.group_size * self.batch_size
            left = max(0, self.epoch_len * self.group_size - int(resume.epoch_samples))
            self.head_steps = left // global_batch
            self.first_step = int(resume.step) + self.head_steps  # where whole epochs start
            self.first_epoch = int(resume.epoch) + 1

    def _order(self, epoch):
        return (np.random.default_rng([self.seed, int(epoch)]).permutation(self.num_rows) if self.shuffle
                else np.arange(self.num_rows))

    def epoch_indices(self, epoch):
        """(epoch_len,) int64 row indices read by this rank in a whole ``epoch``."""
        return self._order(epoch)[self.rank::self.group_size][:self.num_rows // self.group_size][:self.epoch_len]

    def _head_indices(self):
        """Rows this rank reads in the rest of the resumed epoch (head_steps * batch_size of them)."""
        tail = self._order(self.resume.epoch)[int(self.resume.epoch_samples):self.epoch_len * self.group_size]
        return tail[self.rank::self.group_size][:self.head_steps * self.batch_size]

    def _epoch_at(self, pos):
        """(first position, row indices) of the planned stretch holding position ``pos``."""
        head_start = 0 if self.resume is None else int(self.resume.step) * self.batch_size
        whole_start = self.first_step * self.batch_size
        if pos < head_start:
            raise ValueError("position %d precedes the resumed step %d" % (pos, self.resume.step))
        if pos < whole_start:
            return head_start, self._head_indices()
        k = (pos - whole_start) // self.epoch_len
        return whole_start + k * self.epoch_len, self.epoch_indices(self.first_epoch + k)

    def segments(self, start, count):
        """Yield (first position, row indices) per epoch covering positions [start, start + count)."""
        pos, end = int(start), int(start) + int(count)
        while pos < end:
            first, indices = self._epoch_at(pos)
            offset = pos - first
            take = min(len(indices) - offset, end - pos)
            yield pos, indices[offset:offset + take]
            pos += take

    def indices(self, start, count):
        """All row indices of positions [start, start + count) (for tests and inspection)."""
        parts = [idx for _, idx in self.segments(start, count)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def cursor(self, step):
        """The Cursor after global ``step`` (> the resumed step); an epoch's last step ends it."""
        global_batch = self.group_size * self.batch_size
        if self.resume is not None and step <= self.first_step:
            done = step - int(self.resume.step)
            return Cursor(step, int(self.resume.epoch), int(self.resume.epoch_step) + done,
                          int(self.resume.epoch_samples) + done * global_batch)
        epoch, in_epoch = divmod(step - self.first_step - 1, self.steps_per_epoch)
        return Cursor(step, self.first_epoch + epoch, in_epoch + 1, (in_epoch + 1) * global_batch)


class _StreamSource:
    """GeneratorDataset source: rows of the planned positions, read epoch by epoch.

    MindDataset's SubsetSampler refuses more indices than rows, so each epoch segment gets
    its own MindDataset (only one open at a time) and the position column is attached here.
    """

    def __init__(self, files, plan, start, count, reader_workers=1):
        self.files, self.plan, self.start, self.count = list(files), plan, int(start), int(count)
        self.reader_workers = reader_workers

    def __len__(self):
        return self.count

    def __iter__(self):
        import mindspore.dataset as ds
        columns = SOURCE_COLUMNS[:-1]
        for first, indices in self.plan.segments(self.start, self.count):
            reader = ds.MindDataset(self.files, columns_list=columns, sampler=ds.SubsetSampler(indices.tolist()),
                                    num_parallel_workers=self.reader_workers)
            for offset, row in enumerate(reader.create_tuple_iterator(output_numpy=True, num_epochs=1)):
                yield tuple(row) + (np.array(first + offset, np.int64),)


def create_train_dataset(cfg, num_steps, start_step=0, rank=0, group_size=1, resume=None):
    """Training dataset of ``num_steps`` batches of global steps start_step+1 .. start_step+num_steps.

    ``resume``: the Cursor of the checkpoint resumed from (SamplePlan), None for a fresh run.
    Reads the MindRecord files of ``cfg.mindrecord_dir`` / ``cfg.mindrecord_prefix`` with
    cfg.train_config.batch_size, cfg.seed, cfg.do_shuffle and cfg.num_parallel_workers
    (capped at the core count). Columns: train_columns(cfg.net_config), each with a leading
    batch dimension. The dataset is one pass over that stream: iterate it once (num_epochs=1,
    or one data-sink pass); iterating again replays the same batches.
    """
    import mindspore.dataset as ds
    mindrecord_dir, prefix, batch_size = cfg.mindrecord_dir, cfg.mindrecord_prefix, cfg.train_config.batch_size
    files = mindrecord_files(mindrecord_dir, prefix)
    num_rows = ds.MindDataset(files, columns_list=["image_id"], shuffle=False).get_dataset_size()
    _check_meta(cfg, mindrecord_dir, prefix)
    plan = SamplePlan(num_rows, batch_size, cfg.seed, rank, group_size, cfg.do_shuffle, resume)
    if plan.steps_per_epoch == 0:
        raise ValueError("%s holds %d images, fewer than group_size %d x batch_size %d"
                         % (mindrecord_dir, num_rows, group_size, batch_size))
    if start_step < 0 or num_steps <= 0:
        raise ValueError("need start_step >= 0 and num_steps > 0, got %d and %d" % (start_step, num_steps))
    workers = max(1, min(cfg.num_parallel_workers, os.cpu_count() or 1))  # MindSpore's limit
    _limit_prefetch(sample_nbytes(cfg) * batch_size)
    source = _StreamSource(files, plan, start_step * batch_size, num_steps * batch_size)
    dataset = ds.GeneratorDataset(source, column_names=SOURCE_COLUMNS, shuffle=False, num_parallel_workers=1,
                                  python_multiprocessing=False)
    columns = train_columns(cfg.net_config)
    dataset = dataset.map(TrainTransform(cfg, rank), input_columns=SOURCE_COLUMNS, output_columns=columns,
                          num_parallel_workers=workers, python_multiprocessing=True)
    dataset = dataset.project(columns).batch(batch_size, drop_remainder=True)
    LOGGER.info("training data: %d images, rank %d/%d, %d steps per epoch, steps %d..%d, %d workers",
                num_rows, rank, group_size, plan.steps_per_epoch, start_step, start_step + num_steps - 1, workers)
    return dataset


def _limit_prefetch(batch_nbytes):
    """Lower MindSpore's (global) per-op queue depth so queued batches stay near PREFETCH_BYTES.

    With the default depth of 16, a slow consumer lets 512x512/80-class batches of 16 pile
    up to about 4 GB; small quick-start batches keep the default.
    """
    import mindspore.dataset as ds
    depth = max(2, int(PREFETCH_BYTES // max(batch_nbytes, 1)))
    if ds.config.get_prefetch_size() > depth:
        LOGGER.info("lowering the dataset prefetch size from %d to %d (%.0f MB per batch)",
                    ds.config.get_prefetch_size(), depth, batch_nbytes / 2 ** 20)
        ds.config.set_prefetch_size(depth)


def _check_meta(cfg, mindrecord_dir, prefix):
    """Check the dataset's class count against the config; warn once about objects beyond max_objs."""
    meta = read_meta(mindrecord_dir, prefix)
    if meta is None:
        return
    max_objs = int(cfg.dataset_config.max_objs)
    images, objects = over_max_objs(meta.get("objects_per_image", {}), max_objs)
    if images:
        LOGGER.warning("%d training images hold more than dataset_config.max_objs=%d objects: %d objects get no "
                       "target (max_objs_policy %s)", images, max_objs, objects, cfg.dataset_config.max_objs_policy)
    have, want = int(meta["num_classes"]), int(cfg.dataset_config.num_classes)
    if have > want:
        raise ValueError("%s has %d classes but dataset_config.num_classes is %d"
                         % (meta_path(mindrecord_dir, prefix), have, want))
    if have < want:
        LOGGER.warning("%s has %d classes, dataset_config.num_classes is %d", mindrecord_dir, have, want)
