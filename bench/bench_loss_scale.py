"""Benchmark: an fp32 training step with and without the loss-scale work, interleaved A/B.

A: loss x scale, gradients unscaled, all-finite check, dynamic-scale update, conditional
update (what every step did before amp_level tied loss scaling to fp16). B: the fp32 step
of amp_level O0 (none of that). Both cells are built from the same seed and fed the same
random batch; each round times A then B, and the medians are reported.

    python bench/bench_loss_scale.py                 # full ResNet-101 at 512x512, batch 2
    python bench/bench_loss_scale.py --config_path=quick_start_config.yaml --batch_size=8
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench.bench_train import _targets, config_argv  # noqa: E402  (after the sys.path set-up)


def _cell(cfg, loss_scale):
    import mindspore as ms
    from mindspore import nn

    from src.centernet_det import CenterNetDet, CenterNetLossCell, CenterNetTrainStep
    from src.trainer import LOSS_SCALE_FACTOR

    ms.set_seed(0)
    net = CenterNetDet(cfg.net_config, cfg.dataset_config.num_classes)
    opt = nn.Adam(net.trainable_params(), 1e-4)
    update = nn.DynamicLossScaleUpdateCell(1024.0, LOSS_SCALE_FACTOR, 1000) if loss_scale else None
    cell = CenterNetTrainStep(CenterNetLossCell(net, cfg.net_config), opt, update, 1024.0 if loss_scale else None)
    cell.set_train()
    return cell


def measure(argv, batch_size, rounds=5, warmup=2):
    """{"loss_scale": median s, "none": median s, ...} of interleaved fp32 training steps."""
    from mindspore import Tensor

    from src.model_utils.config import get_config
    from src.model_utils.device_adapter import set_device

    cfg = get_config(argv)
    set_device(cfg)
    rng = np.random.default_rng(0)
    h, w = cfg.dataset_config.input_res_train
    image = rng.random((batch_size, 3, h, w), dtype=np.float32)
    inputs = [Tensor(a) for a in [image] + _targets(cfg, batch_size, cfg.dataset_config.num_classes, rng)]
    cells = {"loss_scale": _cell(cfg, True), "none": _cell(cfg, False)}
    times = {name: [] for name in cells}
    for i in range(warmup + rounds):
        for name, cell in cells.items():
            start = time.perf_counter()
            cell(*inputs)[0].asnumpy()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
        print("round %d/%d: %s" % (i + 1, warmup + rounds, ", ".join(
            "%s %.3f s" % (n, t[-1]) for n, t in times.items() if t)), flush=True)
    result = {name: statistics.median(t) for name, t in times.items()}
    # Paired per-round ratio: both steps of a round share the machine's load of that moment.
    result["ratio"] = statistics.median(b / a for a, b in zip(times["loss_scale"], times["none"]))
    result.update(runs=rounds, input="%dx%d" % (h, w), batch=batch_size,
                  all={name: t for name, t in times.items()})
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config_path", default="", help="yaml merged onto default_config.yaml")
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    args, overrides = parser.parse_known_args(argv)
    cfg_argv = config_argv(args.config_path, overrides)
    result = measure(cfg_argv, args.batch_size, args.rounds)
    print("fp32 training step, input %s, batch %d, median of %d interleaved rounds: with loss-scale work %.3f s, "
          "without %.3f s; median per-round ratio without/with %.3f"
          % (result["input"], result["batch"], result["runs"], result["loss_scale"], result["none"], result["ratio"]))
    if args.json:
        from src.file_io import write_json_atomic
        write_json_atomic(args.json, result, indent=2)
    return result


if __name__ == "__main__":
    main()
