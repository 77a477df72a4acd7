"""Benchmark: the two deformable-convolution implementations on the up-path layer sizes.

For every DCN of the CenterNet up path at a 512x512 input (ResNet-101: 2048->256 at 16x16,
256->128 at 32x32, 128->64 at 64x64; ResNet-18's first one is 512->256 at 16x16), times the
layer (offset conv included) with ``implementation="kernel"`` (``ops.deformable_conv2d``) and
``"gather"`` (bilinear gathers plus one matmul): forward at batch 1, and forward+backward
(gradients of the input and of every parameter) at batch 2. Both cells are compiled first, then
the repetitions alternate between them in this one process; medians are reported.

    python bench/bench_dcn.py [--repeats 7] [--json out.json]
"""
import argparse
import os
import statistics
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, in channels, out channels, spatial side of the map at a 512x512 input)
LAYERS = (("r101 dcn1", 2048, 256, 16), ("r101 dcn2", 256, 128, 32), ("r101 dcn3", 128, 64, 64),
          ("r18 dcn1", 512, 256, 16))


def _cells(cin, cout, implementation, backward):
    """The layer (random offsets of a few pixels) or its gradient cell."""
    import mindspore as ms
    from mindspore import Tensor, nn, ops

    from src.network.deform_conv import ModulatedDeformConv2d

    ms.set_seed(0)
    layer = ModulatedDeformConv2d(cin, cout, implementation=implementation)
    rng = np.random.default_rng(0)
    layer.conv_offset_mask.weight.set_data(
        Tensor((rng.standard_normal(layer.conv_offset_mask.weight.shape) / np.sqrt(9 * cin)).astype(np.float32)))
    layer.bias.set_data(Tensor(rng.standard_normal(cout).astype(np.float32)))
    if not backward:
        layer.set_train(False)
        return layer

    class Grad(nn.Cell):
        """(x, sens) -> gradients of the input and of every parameter."""

        def __init__(self, net):
            super().__init__()
            self.net = net
            self.weights = net.trainable_params()
            self.grad = ops.GradOperation(get_all=True, get_by_list=True, sens_param=True)

        def construct(self, x, sens):
            return self.grad(self.net, self.weights)(x, sens)

    cell = Grad(layer)
    cell.set_train()
    return cell


def _run(cell, inputs):
    out = cell(*inputs)
    while isinstance(out, (tuple, list)):
        out = out[0]
    out.asnumpy()


def measure(repeats, layers=LAYERS):
    """{layer name: {in_channels, out_channels, side, mode: {implementation: median seconds}}}."""
    import mindspore as ms
    from mindspore import Tensor

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    rng = np.random.default_rng(1)
    results = {}
    for name, cin, cout, side in layers:
        results[name] = {"in_channels": cin, "out_channels": cout, "side": side}
        for mode, batch, backward in (("forward, batch 1", 1, False), ("forward+backward, batch 2", 2, True)):
            x = Tensor(rng.standard_normal((batch, cin, side, side)).astype(np.float32))
            inputs = [x] + ([Tensor(rng.standard_normal((batch, cout, side, side)).astype(np.float32))]
                            if backward else [])
            cells = {impl: _cells(cin, cout, impl, backward) for impl in ("kernel", "gather")}
            for cell in cells.values():  # compile and warm up
                _run(cell, inputs)
                _run(cell, inputs)
            times = {impl: [] for impl in cells}
            for _ in range(repeats):
                for impl, cell in cells.items():
                    start = time.perf_counter()
                    _run(cell, inputs)
                    times[impl].append(time.perf_counter() - start)
            results[name][mode] = {impl: statistics.median(t) for impl, t in times.items()}
            fig = results[name][mode]
            print("%-10s %5d->%-4d %3dx%-3d %-26s kernel %8.2f ms  gather %8.2f ms  gather/kernel %.2f" % (
                name, cin, cout, side, side, mode, 1e3 * fig["kernel"], 1e3 * fig["gather"],
                fig["gather"] / fig["kernel"]), flush=True)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    results = measure(args.repeats)
    if args.json:
        from src.model_utils.file_io import write_json_atomic
        write_json_atomic(args.json, {"repeats": args.repeats, "layers": results}, indent=2)
    return results


if __name__ == "__main__":
    main()
