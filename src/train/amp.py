"""Mixed precision: which amp level a run uses, where the network casts, and the loss-scale policy.

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
"""
import logging

import mindspore as ms
from mindspore import nn, ops
from mindspore.common import dtype as mstype

from .deform_conv import ModulatedDeformConv2d

logger = logging.getLogger(__name__)

AMP_LEVELS = ("O0", "O1", "O2", "O3")
AUTO_LEVEL = {"CPU": "O0", "GPU": "O2", "Ascend": "O2"}
# Cells that stay in fp32 at any level (see the module docstring).
FP32_CELLS = (ModulatedDeformConv2d,)


def resolve_amp_level(amp_level, device_target):
    """The concrete level (O0..O3) of the ``amp_level`` key on ``device_target``."""
    if amp_level == "auto":
        return AUTO_LEVEL[device_target]
    if amp_level not in AMP_LEVELS:
        from .model_utils.config import ConfigError
        raise ConfigError("--amp_level=%s is not one of %s or auto" % (amp_level, "|".join(AMP_LEVELS)))
    return amp_level


def uses_fp16(level):
    return level != "O0"


def use_loss_scale(cfg, level):
    """Dynamic loss scaling runs when the network computes in fp16 and enable_lossscale allows it."""
    return bool(cfg.enable_lossscale) and uses_fp16(level)


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
