"""msrun worker of bench_ops.py comm: times AllReduce (sum) of float32 vectors between the workers."""
import json
import os
import sys
import time

import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.communication.management import get_rank, init

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src.model_utils.device_adapter import set_device  # noqa: E402


class _Sum(nn.Cell):
    def __init__(self):
        super().__init__()
        self.all_reduce = ops.AllReduce()

    def construct(self, x):
        return self.all_reduce(x)


def main():
    set_device(None, "CPU")
    init()
    cell, out = _Sum(), {}
    for size in [int(s) for s in sys.argv[2].split(",")]:
        x = Tensor(np.ones(size, np.float32))
        cell(x).asnumpy()  # compile and warm up
        times = []
        for _ in range(5):
            start = time.perf_counter()
            cell(x).asnumpy()
            times.append(time.perf_counter() - start)
        out[size] = sorted(times)[2]
    if get_rank() == 0:
        with open(sys.argv[1], "w", encoding="utf-8") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
