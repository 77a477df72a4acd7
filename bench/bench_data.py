"""Benchmarks of the data side (not a test): training-pipeline and conversion throughput.

    python bench/bench_data.py [--pipeline_images 256] [--convert_sizes 1000 4000] [--repeats 3]

(a) Training preprocessing of synthetic 640x480 JPEGs to 512x512 with every augmentation
(random crop, flip, rotation, colour) and 80-class targets: the per-sample callable in
this process, then the MindSpore pipeline with 1 and 2 worker processes (images/s per
worker process, timed after the first batch so start-up is excluded).
A last row runs the pipeline at a quick-start size (256x256 input, 5 classes) for comparison.
(b) COCO -> MindRecord conversion at two dataset sizes: images/s and peak RSS of the
converting process and of its reader processes, each in a fresh subprocess.
Figures are medians over ``repeats`` runs. Data is generated in a temporary folder.
"""
import argparse
import copy
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from src import dataset as D
from src.data import train_data
from src.data.train_targets import TrainTransform
from src.model_utils.config import get_config
from tools import make_synthetic_coco as syn

WIDTH, HEIGHT = 640, 480
AUG_ARGS = ["--dataset_config.aug_rot=0.5", "--dataset_config.rotate=10.0", "--dataset_config.color_aug=true",
            "--dataset_config.rand_crop=true", "--dataset_config.flip_prop=0.5", "--dataset_config.num_classes=80"]
SMALL_ARGS = ["--dataset_config.input_res_train=[256,256]", "--dataset_config.num_classes=5"]
# The converter runs in a fresh process; MindSpore is imported first (about 1.5 s, once per
# process) so that images/s measures the conversion itself. A thread samples VmRSS while
# _write_shards runs: the image/row phase, which must stay flat. The overall peak also
# holds json.load of the annotation file, which grows with the number of annotations.
CONVERT_SCRIPT = """
import json, resource, sys, threading, time
import mindspore.mindrecord
from src import dataset as D

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS"))

state = {"on": False, "peak": 0.0, "start": 0.0}
def sample():
    while True:
        if state["on"]:
            state["peak"] = max(state["peak"], rss_mb())
        time.sleep(0.01)
threading.Thread(target=sample, daemon=True).start()
write_shards = D._write_shards
def measured(*args, **kwargs):
    state["start"] = rss_mb()
    state["on"] = True
    try:
        return write_shards(*args, **kwargs)
    finally:
        state["on"] = False
D._write_shards = measured
s = D.coco_to_mindrecord(%r, %r, %r, "bench.mind", shards=8, workers=0)
print(json.dumps({"seconds": s["seconds"], "images": s["num_images"],
                  "write_growth_mb": state["peak"] - state["start"],
                  "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _make_640x480(task):
    """One 640x480 JPEG with shapes (the generator's drawing code at a fixed size)."""
    index, image_dir = task
    rng = np.random.default_rng([1234, index])
    img = syn.make_background(rng, HEIGHT, WIDTH, 0.3)
    anns, _ = syn.place_objects(rng, img, syn.Options(max_objects=8), int(rng.integers(2, 9)))
    name = "%012d.jpg" % (index + 1)
    cv2.imwrite(os.path.join(image_dir, name), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return ({"id": index + 1, "file_name": name, "width": WIDTH, "height": HEIGHT},
            [dict(a, image_id=index + 1) for a in anns])


def make_images(root, count):
    """Generate ``count`` images under root/train2017 (2 processes); returns the image entries + annotations.

    A folder kept from an earlier run (--keep) with enough images is reused.
    """
    image_dir = os.path.join(root, "train2017")
    listing = os.path.join(root, "generated.json")
    if os.path.isfile(listing):
        with open(listing, "r", encoding="utf-8") as f:
            results = json.load(f)
        if len(results) >= count:
            return results[:count]
    os.makedirs(image_dir, exist_ok=True)
    with multiprocessing.Pool(2) as pool:
        results = pool.map(_make_640x480, [(i, image_dir) for i in range(count)], chunksize=16)
    with open(listing, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return results


def write_annotations(root, results, count):
    """Annotation json listing the first ``count`` generated images."""
    images, annotations = [], []
    for entry, anns in results[:count]:
        images.append(entry)
        annotations.extend(dict(a, id=len(annotations) + 1) for a in anns)
    path = os.path.join(root, "annotations", "instances_%d.json" % count)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(syn.coco_document(images, annotations, "bench"), f)
    return path


def bench_callable(cfg, mindrecord_dir, repeats):
    """Median images/s of TrainTransform called in this process on rows held in memory."""
    import mindspore.dataset as ds
    files = D.mindrecord_files(mindrecord_dir, "bench.mind")
    rows = list(ds.MindDataset(files, columns_list=train_data.SOURCE_COLUMNS[:-1], shuffle=False)
                .create_tuple_iterator(output_numpy=True, num_epochs=1))
    transform = TrainTransform(cfg)
    for position, row in enumerate(rows[:8]):
        transform(*row, position)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for position, row in enumerate(rows):
            transform(*row, position)
        rates.append(len(rows) / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_pipeline(cfg, mindrecord_dir, workers, steps, batch, repeats):
    """Median images/s per worker process of the full MindSpore pipeline (after the first batch)."""
    rates = []
    for _ in range(repeats):
        run_cfg = copy.deepcopy(cfg)
        run_cfg.mindrecord_dir, run_cfg.mindrecord_prefix = mindrecord_dir, "bench.mind"
        run_cfg.num_parallel_workers, run_cfg.train_config.batch_size = workers, batch
        dataset = train_data.create_train_dataset(run_cfg, steps)
        iterator = dataset.create_tuple_iterator(output_numpy=True, num_epochs=1)
        next(iterator)
        start = time.perf_counter()
        count = sum(1 for _ in iterator)
        rates.append(count * batch / (time.perf_counter() - start) / workers)
    return statistics.median(rates)


class NoopTransform(TrainTransform):
    """Returns zero arrays of the real shapes: the pipeline's own cost of moving 8.4 MB samples."""

    def __call__(self, image, image_id, bboxes, category_id, iscrowd, position):
        shapes = {"image": (3, self.in_h, self.in_w), "hm": (self.num_classes, self.out_h, self.out_w),
                  "reg_mask": (self.max_objs,), "ind": (self.max_objs,), "wh": (self.max_objs, 2),
                  "reg": (self.max_objs, 2)}
        return tuple(np.zeros(shapes[c], np.int32 if c == "ind" else np.float32) for c in self.columns)


def bench_pipeline_ceiling(cfg, mindrecord_dir, steps, batch, repeats):
    """bench_pipeline with NoopTransform in place of TrainTransform (1 worker)."""
    train_data.TrainTransform = NoopTransform
    try:
        return bench_pipeline(cfg, mindrecord_dir, 1, steps, batch, repeats)
    finally:
        train_data.TrainTransform = TrainTransform


def bench_convert(ann_file, image_dir, out_root, repeats):
    """Median conversion images/s and max peak RSS (MB) of the converting and reader processes."""
    runs = []
    for i in range(repeats):
        out = os.path.join(out_root, "run%d" % i)
        code = CONVERT_SCRIPT % (ann_file, image_dir, out)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        shutil.rmtree(out)
    return {"images": runs[0]["images"],
            "images_per_s": statistics.median(r["images"] / r["seconds"] for r in runs),
            "write_growth_mb": max(r["write_growth_mb"] for r in runs),
            "rss_main_mb": max(r["rss_main_mb"] for r in runs), "rss_worker_mb": max(r["rss_worker_mb"] for r in runs)}


def run(pipeline_images=256, convert_sizes=(1000, 4000), repeats=3, batch=16, keep=None):
    """Run every benchmark; returns a dict of the figures and prints a table."""
    import logging
    logging.getLogger("src.data.train_data").setLevel(logging.ERROR)  # the 5-vs-80-class notice is expected here
    root = keep or tempfile.mkdtemp(prefix="bench_data_")
    results = {}
    try:
        generated = make_images(root, max(max(convert_sizes), pipeline_images))
        image_dir = os.path.join(root, "train2017")
        for size in convert_sizes:
            ann = write_annotations(root, generated, size)
            results["convert_%d" % size] = bench_convert(ann, image_dir, os.path.join(root, "convert"), repeats)
        mr_dir = os.path.join(root, "mr")
        D.coco_to_mindrecord(write_annotations(root, generated, pipeline_images), image_dir, mr_dir, "bench.mind",
                             shards=4, overwrite=True)
        cfg = get_config(AUG_ARGS)
        results["callable_per_process"] = bench_callable(cfg, mr_dir, repeats)
        steps = pipeline_images // batch
        for workers in (1, 2):
            results["pipeline_%dw_per_worker" % workers] = bench_pipeline(cfg, mr_dir, workers, steps, batch, repeats)
        results["pipeline_noop_1w"] = bench_pipeline_ceiling(cfg, mr_dir, steps, batch, repeats)
        small = get_config(AUG_ARGS[:-1] + SMALL_ARGS)
        results["pipeline_small_2w_per_worker"] = bench_pipeline(small, mr_dir, 2, steps, batch, repeats)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print_table(results, convert_sizes)
    return results


def print_table(results, convert_sizes):
    print("\nTraining preprocessing, 640x480 JPEG -> 512x512, all augmentations, 80 classes (images/s)")
    print("  %-52s %8.1f" % ("TrainTransform in one process", results["callable_per_process"]))
    for workers in (1, 2):
        rate = results["pipeline_%dw_per_worker" % workers]
        print("  %-52s %8.1f  (total %.1f)" % ("MindSpore pipeline, %d worker(s), per worker" % workers, rate,
                                             rate * workers))
    print("  %-52s %8.1f" % ("ceiling: same pipeline, no-op transform, 1 worker", results["pipeline_noop_1w"]))
    rate = results["pipeline_small_2w_per_worker"]
    print("  %-52s %8.1f  (total %.1f)" % ("same, 256x256 input and 5 classes, 2 workers", rate, 2 * rate))
    print("\nCOCO -> MindRecord conversion, 640x480 JPEGs, 8 shards, all CPUs (after the MindSpore import)")
    print("  %8s %10s %22s %18s %18s" % ("images", "images/s", "RSS growth writing MB", "peak RSS main MB",
                                          "peak RSS reader MB"))
    for size in convert_sizes:
        r = results["convert_%d" % size]
        print("  %8d %10.1f %22.1f %18.1f %18.1f" % (r["images"], r["images_per_s"], r["write_growth_mb"],
                                                    r["rss_main_mb"], r["rss_worker_mb"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline_images", type=int, default=256)
    parser.add_argument("--convert_sizes", type=int, nargs=2, default=[1000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--keep", default=None, help="generate into this folder and keep it")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args.pipeline_images, tuple(args.convert_sizes), args.repeats, args.batch, args.keep)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
