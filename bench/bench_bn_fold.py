"""Benchmark: the eval network's forward pass with and without BatchNorm folded into the convolutions.

Two CenterNetDetEval cells (forward and decode, as eval.py runs them) of the configured network
hold the same random weights, with BatchNorm statistics away from identity; one of them is
folded by ``src.bn_fold.fold_batch_norm`` (eval_config.fold_bn). Both are compiled first; then
every round times one forward pass of each, the order alternating from round to round, so both
see the same machine load. Reported: the median time of each, the median of the per-round ratios
folded / unfolded, the largest difference of the detections, and the load average.

    python bench/bench_bn_fold.py                        # ResNet-101-DCN, 80 classes, 512x512, batch 1
    python bench/bench_bn_fold.py --rounds 21 --json out.json
    python bench/bench_bn_fold.py --config_path=quick_start_config.yaml --res 128
"""
import argparse
import os
import statistics
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench.bench_train import config_argv


def _randomise_batch_norms(net, rng):
    """Trained-looking BatchNorm parameters: folding then changes every convolution's weights."""
    from mindspore import Tensor
    for p in net.get_parameters():
        if p.name.endswith(("moving_mean", "beta")):
            p.set_data(Tensor(rng.normal(0, 0.2, p.shape).astype(np.float32)))
        elif p.name.endswith(("moving_variance", "gamma")):
            p.set_data(Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))


def measure(cfg_argv, res, rounds):
    """{"unfolded": s, "folded": s, "ratio": median per-round folded/unfolded, ...} for one input size."""
    import mindspore as ms
    from mindspore import Tensor

    from src.network.bn_fold import conv_bn_pairs, fold_batch_norm, parameter_count
    from src.centernet_det import CenterNetDet
    from src.decode import CenterNetDetEval
    from src.model_utils.config import get_config
    from src.model_utils.device_adapter import set_device

    cfg = get_config(cfg_argv)
    set_device(cfg)
    ms.set_seed(0)
    rng = np.random.default_rng(0)
    num_classes = cfg.dataset_config.num_classes
    nets, params = {}, {}
    folded_layers = 0
    for name in ("unfolded", "folded"):
        net = CenterNetDet(cfg.net_config, num_classes)
        if nets:
            values = {p.name: p.asnumpy() for p in nets["unfolded"].network.get_parameters()}
            for p in net.get_parameters():
                p.set_data(Tensor(values[p.name]))
        else:
            _randomise_batch_norms(net, rng)
        if name == "folded":
            folded_layers = len(conv_bn_pairs(net))
        params[name] = parameter_count(fold_batch_norm(net, name == "folded"))
        cell = CenterNetDetEval(net, cfg.eval_config.K, cfg.net_config.cat_spec_wh, cfg.net_config.reg_offset)
        cell.set_train(False)
        nets[name] = cell
    image = Tensor(rng.random((1, 3, res, res), dtype=np.float32))
    outputs, compile_s = {}, {}
    for name, cell in nets.items():
        start = time.perf_counter()
        outputs[name] = cell(image).asnumpy()
        compile_s[name] = time.perf_counter() - start
    times = {name: [] for name in nets}
    ratios = []
    for r in range(rounds):
        order = list(nets) if r % 2 == 0 else list(reversed(list(nets)))
        spent = {}
        for name in order:
            start = time.perf_counter()
            nets[name](image).asnumpy()
            spent[name] = time.perf_counter() - start
            times[name].append(spent[name])
        ratios.append(spent["folded"] / spent["unfolded"])
        print("round %d: unfolded %.3f s, folded %.3f s (load average %.2f)"
              % (r + 1, spent["unfolded"], spent["folded"], os.getloadavg()[0]), flush=True)
    return {"input": "%dx%d" % (res, res), "rounds": rounds,
            "unfolded_s": statistics.median(times["unfolded"]), "folded_s": statistics.median(times["folded"]),
            "fastest_unfolded_s": min(times["unfolded"]), "fastest_folded_s": min(times["folded"]),
            "ratio": statistics.median(ratios),
            "compile_s": compile_s, "folded_layers": folded_layers, "parameters": params,
            "max_detection_difference": float(np.abs(outputs["folded"] - outputs["unfolded"]).max()),
            "same_classes": bool(np.array_equal(outputs["folded"][..., 5], outputs["unfolded"][..., 5]))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config_path", default="", help="yaml merged onto default_config.yaml")
    parser.add_argument("--res", type=int, default=512, help="square input side (a multiple of 32)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timed rounds")
    parser.add_argument("--device_target", default="CPU")
    parser.add_argument("--json", help="also write the figures to this file")
    args, overrides = parser.parse_known_args(argv)
    cfg_argv = config_argv(args.config_path, overrides, args.device_target)
    load_before = os.getloadavg()
    result = measure(cfg_argv, args.res, args.rounds)
    result["load_average"] = {"before": [round(v, 2) for v in load_before],
                              "after": [round(v, 2) for v in os.getloadavg()]}
    print("forward + decode, %s, batch 1, %d BatchNorm layers folded (%d -> %d parameter values): "
          "unfolded %.3f s, folded %.3f s (medians of %d interleaved rounds; fastest %.3f / %.3f s); "
          "median per-round ratio folded/unfolded %.3f; detections differ by at most %.2g (same classes: %s); "
          "load average %s before, %s after"
          % (result["input"], result["folded_layers"], result["parameters"]["unfolded"],
             result["parameters"]["folded"], result["unfolded_s"], result["folded_s"], result["rounds"],
             result["fastest_unfolded_s"], result["fastest_folded_s"], result["ratio"],
             result["max_detection_difference"], result["same_classes"],
             result["load_average"]["before"], result["load_average"]["after"]))
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, result, indent=2)
    return result


if __name__ == "__main__":
    main()
