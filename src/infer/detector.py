"""The checkpoint's predictor: the eval network (weights, BN folding, decode) and ``Detector``, which
runs it on inputs of any shape. The loop that feeds it images is src/infer/detect.py; the
predictors of exported models are src/deploy/runtimes.py.

Graph mode compiles the network for its input shape. With ``keep_res``, several test scales or
a folder of photos every image size is a new shape, so ``Detector`` compiles ONE graph whose
input height and width are left free (``Cell.set_inputs`` with ``None`` dimensions), which
every operator of the eval network accepts when the deformable convolution is the gather
formulation (``net_config.dcn_impl=gather``). With ``dcn_impl=kernel`` (whose
``ops.deformable_conv2d`` cannot infer a free height/width) or ``eval_config.dynamic_shape=never``
each shape gets its own static graph instead: the loop visits the images grouped by their
expected input shape (from the json's width/height) and only a few compiled graphs stay alive.
A run with a single input shape (fixed resolution) compiles one static graph.
"""
import collections
import gc
import logging
import time

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.network.bn_fold import fold_batch_norm
from src.centernet_det import CenterNetDet
from src.decode import CenterNetDetEval
from src.utils import CheckpointError, HEAD_PREFIXES, load_network_weights, read_checkpoint

logger = logging.getLogger(__name__)


def checkpoint_classes(path):
    """Number of classes of the heatmap head stored in a checkpoint (None when it has none)."""
    saved = read_checkpoint(path)
    biases = sorted(n for n in saved if n.startswith("hm.") and n.endswith(".bias"))
    return int(saved[biases[-1]].shape[0]) if biases else None


def load_eval_weights(network, path, num_classes, weights="auto"):
    """Load ``path`` into ``network``; a checkpoint for another class count, or one that leaves a
    parameter uninitialised, is a clear error.

    ``weights``: the EMA or raw weights of a training checkpoint (ema | raw | auto, the key eval_weights).
    """
    try:
        return load_network_weights(network, path, filter_weight=False, complete=True, weights=weights)
    except CheckpointError as err:
        if not any(p in str(err) for p in HEAD_PREFIXES):
            raise
        have = checkpoint_classes(path)
        if have is not None and have != num_classes:
            raise CheckpointError("checkpoint %s was trained for %d classes (its heatmap head hm.* has %d outputs) "
                                  "but the network is built for dataset_config.num_classes=%d: %s"
                                  % (path, have, have, num_classes, err)) from err
        raise


def build_eval_network(cfg, num_classes, checkpoint=None, flip_test=None):
    """CenterNetDetEval(CenterNetDet) in inference mode, weights from ``checkpoint`` when given."""
    net_cfg = cfg.net_config
    network = CenterNetDet(net_cfg, num_classes)
    if checkpoint:
        load_eval_weights(network, checkpoint, num_classes, cfg.eval_weights)
    fold_batch_norm(network, cfg.eval_config.fold_bn)
    flip = cfg.flip_test if flip_test is None else flip_test
    net = CenterNetDetEval(network, cfg.eval_config.K, net_cfg.cat_spec_wh, net_cfg.reg_offset, flip)
    net.set_train(False)
    return net


def dynamic_input():
    """The eval network's input with a free height and width: (1, 3, None, None) float32."""
    return Tensor(shape=[1, 3, None, None], dtype=ms.float32)


class PaddedMaxPool(nn.Cell):
    """k x k max-pool with stride s over the input padded by p on every side: nn.MaxPool2d(k, s, "pad", p) as an
    explicit -inf pad plus a valid MaxPool (the same values)."""

    def __init__(self, kernel_size, stride, padding):
        super().__init__()
        self.padding = (padding, padding, padding, padding)
        self.pool = nn.MaxPool2d(kernel_size, stride, pad_mode="valid")

    def construct(self, x):
        return self.pool(ops.pad(x, self.padding, value=float("-inf")))


def exportable_with_dynamic_shape(eval_net):
    """``eval_net`` with the trunk's padded max-pool as ``PaddedMaxPool``, for a dynamic-shape MINDIR.

    nn.MaxPool2d in "pad" mode runs as MaxPool3DWithArgmax, and a MINDIR holding that operator
    with a free height/width, its output feeding two layers (the first residual block), fails to
    run once loaded in MindSpore 2.8 ("output index [0] large than the output size [0] of node");
    the live graph is unaffected. The replacement gives identical outputs (tested).
    """
    trunk = eval_net.network.backbone
    pool = trunk.maxpool
    last = lambda v: v if isinstance(v, int) else v[-1]  # noqa: E731  (int, or a tuple over the dimensions)
    trunk.maxpool = PaddedMaxPool(last(pool.kernel_size), last(pool.stride), last(pool.padding))
    return eval_net


def dynamic_shape_blocker(net_cfg):
    """Why the eval network of ``net_cfg`` cannot compile with a free input height/width (None when it can)."""
    if net_cfg.dcn_impl != "gather":
        return ("net_config.dcn_impl=%s: ops.deformable_conv2d cannot infer a free input height/width"
                % net_cfg.dcn_impl)
    return None


class Detector:
    """(1, 3, H, W) float32 input -> (K, 6) detections, timing every call.

    Graph mode with ``dynamic``: the eval cell is compiled once with a free input height and
    width and runs every shape. Without: each input shape gets its own shallow copy of the
    eval cell (sharing the weights), compiled on first use; at most ``max_graphs`` are kept
    (least recently used dropped), which frees their compiled graphs. In PyNative mode the
    cell runs directly. The first call of a graph (its compilation and first run) counts in
    ``compile_s``, every other call in ``forward_s``.
    """

    def __init__(self, eval_net, dynamic=False, max_graphs=2):
        self.eval_net = eval_net
        self.dynamic = bool(dynamic) and ms.get_context("mode") == ms.GRAPH_MODE
        self.max_graphs = max(1, int(max_graphs))
        self.cells = collections.OrderedDict()
        self.shapes = set()
        self.graphs_compiled = 0
        self.compile_s = 0.0
        self.forward_s = 0.0
        self.calls = 0
        if self.dynamic:
            eval_net.set_inputs(dynamic_input())

    def _cell_for(self, shape):
        """(cell to run, whether this call compiles it)."""
        if ms.get_context("mode") != ms.GRAPH_MODE:
            return self.eval_net, False
        if self.dynamic:
            return self.eval_net, not self.graphs_compiled
        cell = self.cells.get(shape)
        if cell is not None:
            self.cells.move_to_end(shape)
            return cell, False
        while len(self.cells) >= self.max_graphs:
            self.cells.popitem(last=False)
            gc.collect()
        net = self.eval_net
        cell = CenterNetDetEval(net.network, net.decode.K, net.decode.cat_spec_wh, net.reg_offset, net.flip_test)
        cell.set_train(False)
        self.cells[shape] = cell
        return cell, True

    def __call__(self, inp):
        shape = tuple(inp.shape)
        cell, fresh = self._cell_for(shape)
        start = time.perf_counter()
        dets = cell(Tensor(inp)).asnumpy()[0]
        elapsed = time.perf_counter() - start
        if fresh:
            self.graphs_compiled += 1
            self.compile_s += elapsed
            logger.debug("compiled the %s graph for input shape %s in %.1f s",
                         "dynamic-shape" if self.dynamic else "static", shape, elapsed)
        else:
            self.forward_s += elapsed
        self.shapes.add(shape)
        self.calls += 1
        return dets

    def warmup(self, shape):
        """Compile the graph of ``shape`` now (outside any timed loop); returns the seconds it took."""
        before, seen = self.compile_s, shape in self.shapes
        self(np.zeros(shape, np.float32))
        self.calls -= 1
        if not seen:
            self.shapes.discard(tuple(shape))  # ``shapes`` counts the inputs of the run only
        return self.compile_s - before


def expected_shapes(entries, settings):
    """Counter of the network input shapes a run will see (every test scale), or None when an
    entry has no width/height (its shape is only known once the image is read)."""
    if not settings.keep_res:  # input_res_test whatever the image size and scale
        return collections.Counter({settings.input_shape(512, 512): len(entries) * len(settings.scales)})
    shapes = collections.Counter()
    for entry in entries:
        if not entry.get("width") or not entry.get("height"):
            return None
        for scale in settings.scales:
            shapes[settings.input_shape(int(entry["height"]), int(entry["width"]), scale)] += 1
    return shapes


def build_detector(cfg, settings, entries, checkpoint):
    """The eval network as a Detector for ``entries``, its graph compiled before any timed loop.

    eval_config.dynamic_shape decides the graphs: ``auto`` compiles one dynamic-shape graph
    when the run has more than one input shape (or unknown ones) and one static graph
    otherwise; ``always`` / ``never`` force either. A network that cannot take a free
    height/width (``dynamic_shape_blocker``) falls back to static graphs per shape, saying why.
    """
    net = build_eval_network(cfg, settings.num_classes, checkpoint)
    shapes = expected_shapes(entries, settings)
    policy = cfg.eval_config.dynamic_shape
    dynamic = policy == "always" or (policy == "auto" and (shapes is None or len(shapes) > 1))
    blocker = dynamic_shape_blocker(cfg.net_config) if dynamic else None
    if blocker:
        logger.info("%s: compiling one static graph per input shape instead of one dynamic-shape graph", blocker)
        dynamic = False
    detector = Detector(net, dynamic=dynamic, max_graphs=len(settings.scales) + 1)
    count = "unknown" if shapes is None else str(len(shapes))
    if ms.get_context("mode") != ms.GRAPH_MODE:
        logger.info("PyNative mode: the network runs uncompiled (%s input shapes)", count)
    elif dynamic or (shapes is not None and len(shapes) == 1):
        first = shapes.most_common(1)[0][0] if shapes else settings.input_shape(512, 512)
        seconds = detector.warmup(first)
        logger.info("compiled one %s graph in %.1f s for %s input shape(s)",
                    "dynamic-shape" if dynamic else "static %s" % (first,), seconds, count)
    else:
        logger.info("%s input shapes: one static graph compiled per shape, on first use", count)
    return detector
