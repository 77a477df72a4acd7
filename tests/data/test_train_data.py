"""src/data/train_data.py: sample order and the training pipeline contract (columns, determinism, resume, ranks)."""
import collections

import mindspore.dataset as ds
import numpy as np
import pytest

from src.data import train_data as D
from src.dataset import mindrecord_files, over_max_objs, read_meta
from src.data.train_targets import TrainTransform, sample_nbytes, train_columns
from data_helpers import SMALL, load_json

BATCH = 4


def _batches(dataset):
    return [tuple(np.array(c) for c in b) for b in dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)]


def _pipeline_config(make_config, mindrecord, *extra, **overrides):
    """SMALL reading ``mindrecord`` (a SyntheticMindRecord) in batches of BATCH with one worker."""
    values = dict(SMALL, mindrecord_dir=mindrecord.mindrecord_dir, mindrecord_prefix=mindrecord.prefix,
                  num_parallel_workers=1, **{"train_config.batch_size": BATCH})
    for more in extra:
        values.update(more)
    return make_config(values, **overrides)


@pytest.mark.parametrize("layout", ["default", "dense_wh", "cat_spec_wh"])
def test_pipeline_columns_shapes_dtypes(make_config, synthetic_mindrecord, layout):
    extra = {"net_config.%s" % layout: True} if layout != "default" else {}
    cfg = _pipeline_config(make_config, synthetic_mindrecord, extra)
    dataset = D.create_train_dataset(cfg, 2)
    assert dataset.get_dataset_size() == 2
    columns = train_columns(cfg.net_config)
    assert dataset.get_col_names() == columns
    batches = _batches(dataset)
    assert len(batches) == 2
    m, c = 16, 5
    shapes = {"image": ((3, 128, 128), np.float32), "hm": ((c, 32, 32), np.float32),
              "reg_mask": ((m,), np.float32), "ind": ((m,), np.int32), "wh": ((m, 2), np.float32),
              "reg": ((m, 2), np.float32), "dense_wh": ((2, 32, 32), np.float32),
              "dense_wh_mask": ((2, 32, 32), np.float32), "cat_spec_wh": ((m, 2 * c), np.float32),
              "cat_spec_mask": ((m, 2 * c), np.float32)}
    for name, value in zip(columns, batches[0]):
        shape, dtype = shapes[name]
        assert value.shape == (BATCH,) + shape and value.dtype == dtype, name
    assert batches[0][columns.index("reg_mask")].sum() > 0
    assert sample_nbytes(cfg) * BATCH == sum(v.nbytes for v in batches[0])


def test_prefetch_is_lowered_for_big_batches_only(make_config):
    before = ds.config.get_prefetch_size()
    try:
        ds.config.set_prefetch_size(16)
        D._limit_prefetch(4 << 20)
        assert ds.config.get_prefetch_size() == 16
        big = make_config(**{"dataset_config.num_classes": 80})
        assert sample_nbytes(big) == 4 * (3 * 512 * 512 + 80 * 128 * 128 + 6 * 128)
        D._limit_prefetch(sample_nbytes(big) * 32)
        assert ds.config.get_prefetch_size() == 2
    finally:
        ds.config.set_prefetch_size(before)


def test_pipeline_deterministic_resumable_and_worker_independent(make_config, synthetic_mindrecord):
    cfg = _pipeline_config(make_config, synthetic_mindrecord)
    full = _batches(D.create_train_dataset(cfg, 8))  # crosses epoch 0 -> 1
    two_workers = _batches(D.create_train_dataset(_pipeline_config(make_config, synthetic_mindrecord,
                                                                   num_parallel_workers=2), 8))
    resumed = _batches(D.create_train_dataset(cfg, 3, start_step=5))
    assert len(full) == 8 and len(resumed) == 3
    for a, b in zip(full, two_workers):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for a, b in zip(full[5:], resumed):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(full[0][0], full[6][0])
    # The sample at position p is TrainTransform(row of plan index p, p): nothing else is random.
    plan = D.SamplePlan(24, BATCH, cfg.seed)
    row_index = int(plan.indices(6 * BATCH + 1, 1)[0])
    files = mindrecord_files(synthetic_mindrecord.mindrecord_dir)
    row = next(ds.MindDataset(files, columns_list=D.SOURCE_COLUMNS[:-1], sampler=ds.SubsetSampler([row_index]))
               .create_tuple_iterator(output_numpy=True, num_epochs=1))
    direct = TrainTransform(cfg)(*row, np.int64(6 * BATCH + 1))
    assert all(np.array_equal(x, y[1]) for x, y in zip(direct, full[6]))


def test_ranks_read_disjoint_halves(synthetic_mindrecord):
    files = mindrecord_files(synthetic_mindrecord.mindrecord_dir)
    ids = {}
    for rank in (0, 1):
        plan = D.SamplePlan(24, BATCH, 317, rank=rank, group_size=2)
        assert plan.steps_per_epoch == 3
        source = D._StreamSource(files, plan, 0, 2 * plan.epoch_len)
        ids[rank] = [int(r[1]) for r in source]
        assert len(ids[rank]) == 24
    for epoch in (0, 1):
        a, b = (set(ids[r][12 * epoch:12 * epoch + 12]) for r in (0, 1))
        assert len(a) == len(b) == 12 and not a & b
    assert ids[0][:12] != ids[0][12:]  # reshuffled every epoch


def test_sample_plan_order_rules():
    plan = D.SamplePlan(10, 3, seed=5, rank=1, group_size=2)
    perm = np.random.default_rng([5, 4]).permutation(10)
    assert plan.steps_per_epoch == 1 and np.array_equal(plan.epoch_indices(4), perm[1::2][:5][:3])
    fixed = D.SamplePlan(10, 3, seed=5, shuffle=False)
    assert fixed.steps_per_epoch == 3 and fixed.epoch_len == 9  # row 9 is never read: 10 // 3 * 3
    assert fixed.indices(0, 12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2]
    assert fixed.indices(7, 4).tolist() == [7, 8, 0, 1]


def test_pipeline_errors(make_config, synthetic_mindrecord, tmp_path):
    with pytest.raises(ValueError, match=synthetic_mindrecord.mindrecord_dir):
        D.create_train_dataset(_pipeline_config(make_config, synthetic_mindrecord, train_config__batch_size=16), 1,
                               rank=1, group_size=2)
    with pytest.raises(ValueError, match="num_classes"):
        D.create_train_dataset(_pipeline_config(make_config, synthetic_mindrecord, dataset_config__num_classes=3), 1)
    with pytest.raises(ValueError, match="num_steps > 0"):
        D.create_train_dataset(_pipeline_config(make_config, synthetic_mindrecord), 0)
    (tmp_path / "empty_dir").mkdir()
    empty = _pipeline_config(make_config, synthetic_mindrecord, mindrecord_dir=str(tmp_path / "empty_dir"))
    with pytest.raises(FileNotFoundError, match="empty_dir"):
        D.create_train_dataset(empty, 1)


def test_objects_beyond_max_objs_are_counted_by_the_converter_and_warned_once(make_config, synthetic_mindrecord,
                                                                             caplog):
    """Bad input: images with more objects than dataset_config.max_objs | the converter's summary and meta count the images and objects over the limit; training warns once with the totals."""
    counts = collections.Counter(a["image_id"] for a in load_json(synthetic_mindrecord.train_ann)["annotations"]
                                 if a["bbox"][2] > 0 and a["bbox"][3] > 0)
    expected = (sum(n > 2 for n in counts.values()), sum(n - 2 for n in counts.values() if n > 2))
    assert expected[0] > 0
    meta = read_meta(synthetic_mindrecord.mindrecord_dir, synthetic_mindrecord.prefix)
    assert over_max_objs(meta["objects_per_image"], 2) == expected
    assert (meta["images_over_max_objs"], meta["max_objs"]) == (0, 128)
    cfg = _pipeline_config(make_config, synthetic_mindrecord, **{"dataset_config__max_objs": 2})
    D.create_train_dataset(cfg, num_steps=1)
    warnings = [r.getMessage() for r in caplog.records if "max_objs" in r.getMessage()]
    assert warnings == ["%d training images hold more than dataset_config.max_objs=2 objects: %d objects get no "
                        "target (max_objs_policy surviving)" % expected]
