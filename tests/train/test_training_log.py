"""Per-step training log (src/train/training_log.py): CSV rows, logging cadence, resumed files, curves."""
import csv
import logging
import os

from src.centernet_det import StepOutputs
from src.train.training_log import CSV_FIELDS, TrainingLog, plot_curves, read_csv


def _outputs(step, overflow=False):
    """A step's StepOutputs: losses falling with the step."""
    return StepOutputs(3.0 / step, 2.0 / step, 0.5 / step, 0.5 / step, overflow, 1024.0, 10.0 / step)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_rows_every_log_steps_and_at_the_last_step(tmp_path, caplog):
    path = tmp_path / "log" / "training_log.csv"
    log = TrainingLog(str(path), batch_size=4, group_size=1, steps_per_epoch=4, total_steps=7, log_steps=3)
    log.start(0)
    with caplog.at_level(logging.INFO, logger="src.train.training_log"):
        log.record(1, _outputs(1), 1e-3, timed=False)     # the compiling step: always logged, no throughput
        for step in range(2, 8):
            log.record(step, _outputs(step, overflow=step == 5), 2e-3)
    log.close()
    rows = _rows(path)
    assert tuple(rows[0]) == CSV_FIELDS
    assert [int(r[0]) for r in rows[1:]] == [1, 3, 6, 7]               # step 1, multiples of 3, the last
    assert [int(r[1]) for r in rows[1:]] == [1, 1, 2, 2]               # 4 steps per epoch
    assert rows[1][-1] == "nan" and all(float(r[-1]) > 0 for r in rows[2:])
    assert float(rows[3][3]) == float("%.6f" % (3.0 / 6)) and float(rows[3][2]) == 2e-3
    assert log.overflows == 1 and "step 5: gradient overflow" in caplog.text
    assert "epoch: 2, step: 2/4 (global 6/7)" in caplog.text


def test_resumed_run_appends_without_a_second_header_and_the_last_row_of_a_step_wins(tmp_path):
    path = str(tmp_path / "training_log.csv")
    first = TrainingLog(path, 2, 1, steps_per_epoch=10, total_steps=10)
    first.start(0)
    for step in (1, 2, 3):
        first.record(step, _outputs(step), 1e-3)
    first.close()
    resumed = TrainingLog(path, 2, 1, steps_per_epoch=10, total_steps=10)
    resumed.start(2)                                     # resumed from the step-2 checkpoint: step 3 again
    resumed.record(3, StepOutputs(9.0, 1.0, 1.0, 1.0, False, 512.0, 2.0), 1e-3)
    resumed.close()
    assert sum(row[0] == "step" for row in _rows(path)) == 1
    rows = read_csv(path)
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["loss"] == 9.0 and rows[-1]["loss_scale"] == 512.0


def test_each_step_is_in_the_csv_once_after_any_number_of_resumes(tmp_path):
    """Fault: training killed and resumed, several times | training_log.csv holds each step once: rows after the resumed step are replaced."""
    path = str(tmp_path / "training_log.csv")
    for resumed_from, killed_after in ((0, 5), (2, 6), (4, 4), (3, 8)):
        log = TrainingLog(path, 2, 1, steps_per_epoch=10, total_steps=10)
        log.start(resumed_from)
        for step in range(resumed_from + 1, killed_after + 1):
            log.record(step, StepOutputs(float(100 * resumed_from + step), 1.0, 1.0, 1.0, False, 1.0, 1.0), 1e-3)
        log.close()
    steps = [int(r[0]) for r in _rows(path)[1:]]
    assert steps == list(range(1, 9))
    assert [r["loss"] for r in read_csv(path)] == [1, 2, 203, 304, 305, 306, 307, 308]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")]


def test_plot_draws_a_png_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "training_log.csv")
    log = TrainingLog(path, 2, 1, steps_per_epoch=5, total_steps=5)
    log.start(0)
    for step in range(1, 6):
        log.record(step, _outputs(step), 1e-3 * step)
    log.close()
    png = tmp_path / "loss_curve.png"
    assert plot_curves(path, str(png)) == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss_curve.png", "training_log.csv"]


def test_plot_of_an_empty_log_draws_nothing(tmp_path):
    path = str(tmp_path / "training_log.csv")
    TrainingLog(path, 2, 1, steps_per_epoch=5, total_steps=5).close()     # header only
    assert read_csv(path) == []
    assert plot_curves(path, str(tmp_path / "loss_curve.png")) is None
    assert not (tmp_path / "loss_curve.png").exists()
