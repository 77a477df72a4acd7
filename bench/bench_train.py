"""Benchmark: training-step and forward time of the network on the current device (compute only).

Random inputs and targets of the right shapes feed the training cell train.py builds (loss,
gradients, Adam, and the amp level, loss scale and clipping of the configuration), so the data
pipeline is excluded; it has its own benchmark.

    python bench/bench_train.py                      # full ResNet-101 at 512x512, batch 2
    python bench/bench_train.py --config_path=quick_start_config.yaml --batch_size=8
"""
import argparse
import json
import os
import resource
import statistics
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _targets(cfg, batch_size, num_classes, rng):
    """Random but valid targets in the train_columns layout (a few objects per image)."""
    out_h, out_w = cfg.dataset_config.output_res
    max_objs = cfg.dataset_config.max_objs
    hm = rng.random((batch_size, num_classes, out_h, out_w), dtype=np.float32) * 0.5
    reg_mask = np.zeros((batch_size, max_objs), np.float32)
    reg_mask[:, :4] = 1
    ind = rng.integers(0, out_h * out_w, (batch_size, max_objs)).astype(np.int32)
    for b in range(batch_size):
        for k in range(4):
            hm[b, k % num_classes, ind[b, k] // out_w, ind[b, k] % out_w] = 1.0
    wh = rng.uniform(2, 30, (batch_size, max_objs, 2)).astype(np.float32)
    reg = rng.random((batch_size, max_objs, 2), dtype=np.float32)
    columns = [hm, reg_mask, ind, wh]
    if cfg.net_config.reg_offset:
        columns.append(reg)
    return columns


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def config_argv(config_path, overrides, device_target="CPU"):
    """The configuration argv of a benchmark: device, optional yaml merged onto the defaults, overrides."""
    return (["--config_path=%s" % config_path] if config_path else []) + \
        ["--device_target=%s" % device_target] + list(overrides)


def measure(argv, batch_size, steps=5, warmup=2, forward_only=False):
    """Median seconds per training step (or forward pass) for the config given by ``argv``."""
    import mindspore as ms
    from mindspore import Tensor, nn

    from src.centernet_det import CenterNetDet
    from src.decode import CenterNetDetEval
    from src.model_utils.config import get_config
    from src.model_utils.device_adapter import set_device
    from src.train.amp import build_train_step

    cfg = get_config(argv)
    set_device(cfg)
    ms.set_seed(0)
    rng = np.random.default_rng(0)
    num_classes = cfg.dataset_config.num_classes
    net = CenterNetDet(cfg.net_config, num_classes)
    params = sum(int(np.prod(p.shape)) for p in net.trainable_params())
    h, w = cfg.dataset_config.input_res_train
    if forward_only:
        cell = CenterNetDetEval(net, cfg.eval_config.K, cfg.net_config.cat_spec_wh, cfg.net_config.reg_offset)
        cell.set_train(False)
        inputs = [Tensor(rng.random((1, 3, h, w), dtype=np.float32))]
    else:
        opt = nn.Adam(net.trainable_params(), 1e-4)
        cell = build_train_step(cfg, net, opt)
        cell.set_train()
        image = rng.random((batch_size, 3, h, w), dtype=np.float32)
        inputs = [Tensor(a) for a in [image] + _targets(cfg, batch_size, num_classes, rng)]
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        out = cell(*inputs)
        (out[0] if isinstance(out, tuple) else out).asnumpy()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return {"params": params, "seconds": statistics.median(times), "runs": steps,
            "input": "%dx%d" % (h, w), "batch": 1 if forward_only else batch_size, "peak_rss_mb": peak_rss_mb()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config_path", default="", help="yaml merged onto default_config.yaml")
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--forward_only", action="store_true")
    parser.add_argument("--device_target", default="CPU")
    parser.add_argument("--json", help="also write the figures to this file")
    args, overrides = parser.parse_known_args(argv)
    cfg_argv = config_argv(args.config_path, overrides, args.device_target)
    result = measure(cfg_argv, args.batch_size, args.steps, forward_only=args.forward_only)
    kind = "forward (decode included)" if args.forward_only else "training step"
    print("%s: %s, %.2f M parameters, input %s, batch %d: median %.3f s over %d runs (%.2f images/s), "
          "peak RSS %.0f MB" % (kind, args.config_path or "default_config.yaml", result["params"] / 1e6,
                                result["input"], result["batch"], result["seconds"], result["runs"],
                                result["batch"] / result["seconds"], result["peak_rss_mb"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
