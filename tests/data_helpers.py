"""Helpers of the data tests: the small data configuration and readers of the generated files."""
import json

import mindspore.dataset as ds

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
