"""Mixed precision and loss scaling: the amp level of a run, where the network casts, the loss-scale
policy, and the training cell built from them (``build_train_step``).

Levels follow MindSpore's ``ms.amp`` (the cell lists come from ``ms.amp.get_white_list()`` and
``ms.amp.get_black_list()``); ``auto`` picks one per backend:

    CPU     O0  fp32 everywhere, no loss scale (nothing on CPU is faster in fp16)
    GPU     O2  fp16 except BatchNorm; what the original trained with on GPU
    Ascend  O2  fp16 except BatchNorm, dynamic loss scale: MindSpore's O2 training recipe
                (build_train_network's O2 configuration)

    O1  white-listed cells (convolutions, transposed convolutions, Dense, ReLU) in fp16
    O2  every cell in fp16 except the black-listed ones (BatchNorm) in fp32
    O3  every cell in fp16

At every level the deformable convolution (offset conv, sampling and its matmul) stays in
fp32: its sampling positions are absolute feature-map coordinates, whose fp16 spacing
grows with the coordinate (1/32 px at 32-64, the last DCN's range on a 512 input; 1/8 px at
128-256 on large keep_res inputs), and the loss always runs in fp32 on fp32
network outputs. Cells keep their parameters in fp32; ``to_float`` casts them per call, so
checkpoints and parameter names do not depend on the level.

Loss scaling lives here: whether a run scales (``use_loss_scale``: fp16 levels with
enable_lossscale), its dynamic policy (start at train_config.loss_scale_value, halve on an
overflow, double after train_config.loss_scale_window clean steps; the window's range is
checked by the configuration) and the update cell handed to the training step, which only
applies it (src.centernet_det.CenterNetTrainStep: scale, unscale, skip an overflowed step).
"""
import logging

import mindspore as ms
from mindspore import nn, ops
from mindspore.common import dtype as mstype

from src.centernet_det import CenterNetLossCell, CenterNetTrainStep
from src.data.train_targets import train_columns
from src.model_utils.config import ConfigError
from src.network.deform_conv import ModulatedDeformConv2d

logger = logging.getLogger(__name__)

AMP_LEVELS = ("O0", "O1", "O2", "O3")
LOSS_SCALE_FACTOR = 2  # dynamic loss scale: divided by this on overflow, multiplied after a clean window
AUTO_LEVEL = {"CPU": "O0", "GPU": "O2", "Ascend": "O2"}
# Cells that stay in fp32 at any level (see the module docstring).
FP32_CELLS = (ModulatedDeformConv2d,)


def resolve_amp_level(amp_level, device_target):
    """The concrete level (O0..O3) of the ``amp_level`` key on ``device_target``."""
    if amp_level == "auto":
        return AUTO_LEVEL[device_target]
    if amp_level not in AMP_LEVELS:
        raise ConfigError("--amp_level=%s is not one of %s or auto" % (amp_level, "|".join(AMP_LEVELS)))
    return amp_level


def uses_fp16(level):
    return level != "O0"


def use_loss_scale(cfg, level):
    """Dynamic loss scaling runs when the network computes in fp16 and enable_lossscale allows it."""
    return bool(cfg.enable_lossscale) and uses_fp16(level)


def loss_scale_update_cell(cfg, level):
    """(dynamic loss-scale cell, initial scale) of amp level ``level``; (None, None) without loss scaling.

    train_config.loss_scale_window >= 1 is enforced by the configuration's range check.
    """
    if not use_loss_scale(cfg, level):
        return None, None
    scale = float(cfg.train_config.loss_scale_value)
    return nn.DynamicLossScaleUpdateCell(scale, LOSS_SCALE_FACTOR, cfg.train_config.loss_scale_window), scale


def build_train_step(cfg, network, optimizer):
    """The training cell of ``network``: amp level, loss-scale policy and gradient clipping from ``cfg``."""
    level = resolve_amp_level(cfg.amp_level, cfg.device_target)
    clip = float(cfg.train_config.grad_clip_norm)
    if clip < 0:
        raise ConfigError("--train_config.grad_clip_norm=%g must be >= 0 (0 turns clipping off)" % clip)
    loss_net = CenterNetLossCell(apply_amp(network, level), cfg.net_config, train_columns(cfg.net_config))
    update, scale = loss_scale_update_cell(cfg, level)
    logging.getLogger("train").info("amp level %s (amp_level=%s on %s), %s, gradient clipping %s", level, cfg.amp_level,
                cfg.device_target, "dynamic loss scale from %g" % scale if update else "no loss scale",
                "at global norm %g" % clip if clip else "off")
    return CenterNetTrainStep(loss_net, optimizer, update, scale, clip)


class CastOutputs(nn.Cell):
    """Run ``cell`` and cast its floating outputs to ``dtype`` (keeps parameter names: no prefix)."""

    def __init__(self, cell, dtype):
        super().__init__(auto_prefix=False)
        self.cell = cell
        self.dtype = dtype

    def construct(self, *args):
        return ops.mixed_precision_cast(self.dtype, self.cell(*args))


def _wrap_children(cell, choose):
    """Replace each child ``c`` of ``cell`` (recursively) by ``choose(c)`` when that is not None."""
    changed = False
    for name, child in list(cell.name_cells().items()):
        replacement = choose(child)
        if replacement is not None:
            cell._cells[name] = replacement  # pylint: disable=protected-access
            changed = True
        else:
            _wrap_children(child, choose)
    if changed and isinstance(cell, nn.SequentialCell):
        cell.cell_list = list(cell.cells())


def apply_amp(network, level, dtype=mstype.float16):
    """Set the compute precision of ``network``'s cells for ``level``, in place.

    Returns the cell to train or run: ``network`` itself at O0, otherwise a wrapper whose
    outputs are fp32, so the loss and the decode see fp32 tensors.
    """
    if level == "O0":
        return network
    fp16_cells = tuple(c for c in ms.amp.get_white_list() if issubclass(c, nn.Cell))
    keep_fp32 = FP32_CELLS + (tuple(ms.amp.get_black_list()) if level == "O2" else ())

    def to_fp32(child):
        return CastOutputs(child.to_float(mstype.float32), dtype) if isinstance(child, keep_fp32) else None

    def o1_cell(child):
        if isinstance(child, FP32_CELLS):
            return child  # left as it is (fp32); not descended into
        if isinstance(child, fp16_cells):
            return CastOutputs(child.to_float(dtype), mstype.float32)
        return None

    if level == "O1":
        _wrap_children(network, o1_cell)
    else:
        network.to_float(dtype)
        _wrap_children(network, to_fp32)
    logger.info("mixed precision %s: %s computes in %s (deformable convolutions%s in fp32)", level,
                type(network).__name__, dtype, " and BatchNorm" if level == "O2" else "")
    return CastOutputs(network, mstype.float32)


def cell_precisions(network):
    """{parameter-owning cell name: 'fp16' | 'fp32'} as the compiled graph will run it.

    A cell's flags come from the nearest ``to_float`` on its path (a cell's own call sets
    its subtree); cells without one run in the dtype of their inputs, reported as the
    dtype their caller computes in.
    """
    result = {}

    def visit(cell, prefix, inherited):
        flags = cell.get_flags()
        own = "fp16" if flags.get("fp16") else "fp32" if flags.get("fp32") else inherited
        if list(cell.get_parameters(expand=False)):
            result[prefix.rstrip(".") or type(cell).__name__] = own
        for name, child in cell.name_cells().items():
            visit(child, prefix if isinstance(cell, CastOutputs) else prefix + name + ".", own)

    visit(network, "", "fp32")
    return result
