"""Benchmark: the eval network's forward pass with and without BatchNorm folded into the convolutions.

Two CenterNetDetEval cells (forward and decode, as eval.py runs them) of the configured network
hold the same random weights (``bench.agreement.live_random_weights``: BatchNorm statistics
calibrated on the benchmark image and one more, gamma and beta random, deformable offsets of a
few pixels); one of them is folded by ``src.network.bn_fold.fold_batch_norm`` (eval_config.fold_bn).
Both are compiled first; then every round times one forward pass of each, the order
alternating from round to round, so both see the same machine load. Reported: the median time
of each, the median of the per-round ratios folded / unfolded, and the load average.

Before timing, the folded network is checked against the unfolded one on the benchmark image
(bench/agreement.py): a degeneracy summary of the detections, the heads (within float32 noise)
and the detections (near ties allowed). The script exits 1 when the outputs are degenerate or
the two disagree; --corrupt folds one BatchNorm with its mean negated to see it fail.

    python bench/bench_bn_fold.py                        # ResNet-101-DCN, 80 classes, 512x512, batch 1
    python bench/bench_bn_fold.py --rounds 21 --json out.json
    python bench/bench_bn_fold.py --config_path=quick_start_config.yaml --res 128
"""
import argparse
import logging
import os
import statistics
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench.agreement import (AgreementError, agreement_line, check_degeneracy, compare_detections,
                             compare_heads, live_random_weights, tolerances)
from bench.bench_train import config_argv

logger = logging.getLogger(__name__)


def check_agreement(heads, outputs, offsets):
    """Folded against unfolded ({"unfolded": ..., "folded": ...} heads and (1, K, 6) detections): the figures,
    or AgreementError when the detections are degenerate or the two disagree."""
    tol = tolerances(heads["unfolded"])
    want, got = outputs["unfolded"][0], outputs["folded"][0]
    summary = check_degeneracy(want, tol["score"], offsets)
    logger.info("degeneracy: %s", summary)
    result = {"degeneracy": summary, "tolerances": tol, "detections": len(want),
              "head_diff": compare_heads(heads["unfolded"], heads["folded"], tol)}
    result.update(compare_detections(want, got, tol["score"], tol["box"]))
    return result


def measure(cfg_argv, res, rounds, corrupt=False):
    """{"unfolded_s": s, "folded_s": s, "ratio": median per-round folded/unfolded, ...} for one input size.

    AgreementError (before any timing) when the two networks disagree. ``corrupt`` negates the
    moving mean of the last BatchNorm of the network to fold.
    """
    import mindspore as ms
    from mindspore import Tensor, nn

    from src.network.bn_fold import conv_bn_pairs, fold_batch_norm, parameter_count
    from src.centernet_det import CenterNetDet
    from src.decode import CenterNetDetEval
    from src.model_utils.config import get_config
    from src.model_utils.device_adapter import set_device

    cfg = get_config(cfg_argv)
    set_device(cfg)
    ms.set_seed(0)
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (2, 3, res, res)).astype(np.float32)  # the benchmark image and one more
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
            offsets = live_random_weights(net, image)["offset_px"]
        if name == "folded" and corrupt:
            last = [cell for _, cell in net.cells_and_names() if isinstance(cell, nn.BatchNorm2d)][-1]
            last.moving_mean.set_data(-last.moving_mean)
        if name == "folded":
            folded_layers = len(conv_bn_pairs(net))
        params[name] = parameter_count(fold_batch_norm(net, name == "folded"))
        cell = CenterNetDetEval(net, cfg.eval_config.K, cfg.net_config.cat_spec_wh, cfg.net_config.reg_offset)
        cell.set_train(False)
        nets[name] = cell
    image = Tensor(image[:1])
    outputs, compile_s = {}, {}
    for name, cell in nets.items():
        start = time.perf_counter()
        outputs[name] = cell(image).asnumpy()
        compile_s[name] = time.perf_counter() - start
    agreement = check_agreement({name: [h.asnumpy() for h in cell.network(image)] for name, cell in nets.items()},
                                outputs, offsets)
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
            "compile_s": compile_s, "folded_layers": folded_layers, "parameters": params, "agreement": agreement}


def main(argv=None):
    """Run the benchmark and print its figures; 0, or 1 when the folded network disagrees with the unfolded one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config_path", default="", help="yaml merged onto default_config.yaml")
    parser.add_argument("--res", type=int, default=512, help="square input side (a multiple of 32)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timed rounds")
    parser.add_argument("--device_target", default="CPU")
    parser.add_argument("--corrupt", action="store_true",
                        help="fold one BatchNorm with its mean negated: the agreement check must fail")
    parser.add_argument("--json", help="also write the figures to this file")
    args, overrides = parser.parse_known_args(argv)
    cfg_argv = config_argv(args.config_path, overrides, args.device_target)
    load_before = os.getloadavg()
    try:
        result = measure(cfg_argv, args.res, args.rounds, args.corrupt)
    except AgreementError as exc:
        logger.error("folded vs unfolded: FAILED: %s", exc)
        return 1
    result["load_average"] = {"before": [round(v, 2) for v in load_before],
                              "after": [round(v, 2) for v in os.getloadavg()]}
    print("forward + decode, %s, batch 1, %d BatchNorm layers folded (%d -> %d parameter values): "
          "unfolded %.3f s, folded %.3f s (medians of %d interleaved rounds; fastest %.3f / %.3f s); "
          "median per-round ratio folded/unfolded %.3f; load average %s before, %s after"
          % (result["input"], result["folded_layers"], result["parameters"]["unfolded"],
             result["parameters"]["folded"], result["unfolded_s"], result["folded_s"], result["rounds"],
             result["fastest_unfolded_s"], result["fastest_folded_s"], result["ratio"],
             result["load_average"]["before"], result["load_average"]["after"]))
    print("folded vs unfolded: " + agreement_line(result["agreement"]))
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, result, indent=2)
    return 0


if __name__ == "__main__":
    from src.model_utils.entry import setup_logging
    setup_logging("INFO")
    sys.exit(main())
