"""What a training run records besides checkpoints.

TrainingLog: per-step log line, CSV row and, at the end, a loss-curve PNG (plot_curves).
StepProfiler: MindSpore's profiler over the first steps. DataOrderRecord: which images each
step of this rank read (a debug CSV).
"""
import csv
import logging
import os
import time

import numpy as np

from src.model_utils.file_io import atomic_path

logger = logging.getLogger(__name__)

CSV_FIELDS = ("step", "epoch", "lr", "loss", "hm_loss", "wh_loss", "off_loss", "loss_scale", "overflow",
              "grad_norm", "images_per_sec")


class TrainingLog:
    """Log every ``log_steps`` steps: epoch, step, total and per-term losses, lr, images/s.

    ``csv_path`` receives one row per logged step (appended, so a resumed run continues the
    file; the rows after the step it resumes from are dropped by ``start``, so each step
    appears once); ``plot()`` draws the curves to a PNG beside it.
    """

    def __init__(self, csv_path, batch_size, group_size, steps_per_epoch, total_steps, log_steps=1, position=None):
        """``position(step)``: (epoch, step in epoch) of a global step, by default from steps_per_epoch."""
        self.csv_path = csv_path
        self.position = position or (lambda step: ((step - 1) // steps_per_epoch + 1,
                                                   (step - 1) % steps_per_epoch + 1))
        self.images_per_step = batch_size
        self.group_size = group_size
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.log_steps = max(1, log_steps)
        self.overflows = 0
        self._last_time = None
        self._last_step = None
        self._file = None
        if csv_path:
            os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
            new = not os.path.exists(csv_path) or os.path.getsize(csv_path) == 0
            self._file = open(csv_path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            if new:
                self._writer.writerow(CSV_FIELDS)

    def start(self, step):
        """Mark the time origin just before ``step`` + 1 is run; drop CSV rows of later steps (a resumed run)."""
        if self._file and self._last_step is None:
            self._drop_rows_after(step)
        self._last_time = time.perf_counter()
        self._last_step = step

    def _drop_rows_after(self, step):
        """Rewrite the CSV (atomically) without the rows of steps after ``step``, which are run again."""
        self._file.close()
        with open(self.csv_path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        kept = [r for r in rows[1:] if r and int(r[0]) <= step]
        if len(kept) != len(rows) - 1:
            logger.info("%s: dropping %d rows after step %d, which this run repeats",
                        self.csv_path, len(rows) - 1 - len(kept), step)
            with atomic_path(self.csv_path) as tmp:
                with open(tmp, "w", newline="", encoding="utf-8") as f:
                    csv.writer(f).writerows([CSV_FIELDS] + kept)
        self._file = open(self.csv_path, "a", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)

    def record(self, step, outputs, lr, timed=True):
        """``step``: global data steps done (1-based); ``outputs``: the step's StepOutputs.

        ``timed`` False (the first step of a run, which compiles the graph) logs the step
        without a throughput figure (images_per_sec nan in the CSV).
        """
        total, hm_loss, wh_loss, off_loss = outputs.loss, outputs.hm_loss, outputs.wh_loss, outputs.off_loss
        overflow, scale = outputs.overflow, outputs.loss_scale
        if overflow:
            self.overflows += 1
            logger.warning("step %d: gradient overflow at loss scale %g; the step was skipped", step, scale)
        if timed and step % self.log_steps and step != self.total_steps:
            return
        now = time.perf_counter()
        steps = step - self._last_step
        seconds = max(now - self._last_time, 1e-9)
        ips = steps * self.images_per_step / seconds if timed else float("nan")
        self._last_time, self._last_step = now, step
        epoch, in_epoch = self.position(step)
        logger.info("epoch: %d, step: %d/%d (global %d/%d), loss: %.5f (hm %.5f, wh %.5f, off %.5f), lr: %.3e, "
                    "loss_scale: %g, grad norm %.4g, %s%s", epoch, in_epoch, self.steps_per_epoch, step,
                    self.total_steps, total, hm_loss, wh_loss, off_loss, lr, scale, outputs.grad_norm,
                    "%.1f images/s" % ips if timed else "graph compiled",
                    " (x%d devices)" % self.group_size if self.group_size > 1 else "")
        if self._file:
            self._writer.writerow((step, epoch, "%.6e" % lr, "%.6f" % total, "%.6f" % hm_loss, "%.6f" % wh_loss,
                                   "%.6f" % off_loss, "%g" % scale, int(bool(overflow)), "%.6g" % outputs.grad_norm,
                                   "%.2f" % ips))
            self._file.flush()

    def close(self):
        if self._file:
            self._file.close()
            self._file = None


def read_csv(csv_path):
    """Rows of a training CSV as dicts of floats, the last row winning for a repeated step."""
    rows = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rows[int(row["step"])] = {k: float(v) for k, v in row.items()}
    return [rows[s] for s in sorted(rows)]


def plot_curves(csv_path, png_path):
    """Draw total and per-term losses (log scale) and the learning rate against the step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_csv(csv_path)
    if not rows:
        logger.warning("no training rows in %s: no curve drawn", csv_path)
        return None
    steps = [r["step"] for r in rows]
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(3, 1))
    for key, style in (("loss", "k-"), ("hm_loss", "r-"), ("wh_loss", "b-"), ("off_loss", "g-")):
        ax_loss.plot(steps, [max(r[key], 1e-8) for r in rows], style, label=key, linewidth=1)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(loc="upper right")
    ax_loss.grid(True, alpha=0.3)
    ax_lr.plot(steps, [r["lr"] for r in rows], "m-", linewidth=1)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(True, alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return png_path


class StepProfiler:
    """MindSpore's profiler over the first ``steps`` training steps (after the compiling first one)."""

    def __init__(self, path, steps, rank, device_target):
        from mindspore.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler
        self.path, self.steps, self.done = path, max(1, steps), False
        os.makedirs(path, exist_ok=True)
        activities = [ProfilerActivity.CPU] + {"Ascend": [ProfilerActivity.NPU],
                                               "GPU": [ProfilerActivity.GPU]}.get(device_target, [])
        self._prof = profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=self.steps, repeat=1),
                             on_trace_ready=tensorboard_trace_handler(path, worker_name="rank%d" % rank))
        self._count = 0
        self._prof.start()
        logger.info("profiling steps 2..%d (step 1 compiles the graph) into %s", self.steps + 1, path)

    def step(self):
        if self.done:
            return
        self._prof.step()
        self._count += 1
        if self._count >= self.steps + 1:
            self.stop()

    def stop(self):
        if not self.done:
            self.done = True
            self._prof.stop()
            logger.info("profiler output written to %s", os.path.abspath(self.path))


class DataOrderRecord:
    """Debug record of the images this rank reads: one CSV row per sample (step, position, row, image_id).

    Rows come from the same SamplePlan that create_train_dataset follows, so they name the
    images of each step without touching the pipeline; written after each step completes.
    """

    def __init__(self, path, cfg, batch_size, rank, group_size, resume=None):
        import mindspore.dataset as ds
        from src.data.mindrecord import mindrecord_files
        from src.data.train_data import SamplePlan
        files = mindrecord_files(cfg.mindrecord_dir, cfg.mindrecord_prefix)
        reader = ds.MindDataset(files, columns_list=["image_id"], shuffle=False)
        self.image_ids = np.array([int(r[0]) for r in reader.create_tuple_iterator(output_numpy=True, num_epochs=1)])
        self.plan = SamplePlan(len(self.image_ids), batch_size, cfg.seed, rank, group_size, cfg.do_shuffle, resume)
        self.batch_size = batch_size
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self._file = open(path, "a", encoding="utf-8")
        if new:
            self._file.write("step,position,row,image_id\n")

    def record(self, first_step, steps):
        """Rows of global steps first_step+1 .. first_step+steps."""
        start = first_step * self.batch_size
        rows = self.plan.indices(start, steps * self.batch_size)
        for offset, row in enumerate(rows):
            position = start + offset
            self._file.write("%d,%d,%d,%d\n" % (position // self.batch_size + 1, position, row, self.image_ids[row]))
        self._file.flush()

    def close(self):
        self._file.close()
