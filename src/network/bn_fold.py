"""BatchNorm folded into the preceding convolution, for inference and export.

In inference mode a BatchNorm is a per-channel affine map y = x * scale + shift, with
scale = gamma / sqrt(moving_variance + eps) and shift = beta - moving_mean * scale. After a
convolution of weight w and bias b it merges into that convolution:

    w' = w * scale (per output channel),   b' = b * scale + shift

so the folded network skips one pass over every BatchNorm's output and holds 3 fewer numbers
per channel (gamma, beta, mean, variance become one bias). The arithmetic is float64 and the
results are stored as float32; ``src/deploy/onnx_export.py`` writes its folded weights with the same
functions, so there is one folding formula.

``fold_batch_norm`` rewrites a built network in place once its weights are loaded (before its
first call): each Conv2d / Conv2dTranspose / ModulatedDeformConv2d followed by a BatchNorm2d
gets the folded weight and a bias, and the BatchNorm cell becomes a ``FoldedBatchNorm``
(identity). Pairs are found by structure: consecutive cells of a SequentialCell, and the
sibling attributes ``convX`` / ``bnX`` of the torchvision ResNet naming (``conv1`` / ``bn1``...),
where ``bnX`` is applied to ``convX``'s output only.
"""
import logging

import numpy as np
from mindspore import Parameter, Tensor, nn
from mindspore.common import dtype as mstype

from src.network.deform_conv import ModulatedDeformConv2d

logger = logging.getLogger(__name__)

CONV_TYPES = (nn.Conv2d, nn.Conv2dTranspose, ModulatedDeformConv2d)


class FoldedBatchNorm(nn.Identity):
    """What remains of a BatchNorm2d folded into the preceding convolution: the identity."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels

    def extend_repr(self):
        return "channels=%d" % self.channels


def _float64(param):
    return param.asnumpy().astype(np.float64)


def bn_affine(bn):
    """(scale, shift), float64 (C,), of an inference-mode BatchNorm2d: y = x * scale + shift per channel."""
    scale = _float64(bn.gamma) / np.sqrt(_float64(bn.moving_variance) + bn.eps)
    return scale, _float64(bn.beta) - _float64(bn.moving_mean) * scale


def out_channel_axis(conv):
    """Axis of the output channels in ``conv.weight``: 1 for Conv2dTranspose (in, out, kh, kw), else 0."""
    return 1 if isinstance(conv, nn.Conv2dTranspose) else 0


def folded_weights(conv, bn=None):
    """(weight, bias) float64 arrays of ``conv`` followed by ``bn``.

    ``bn`` None or a FoldedBatchNorm (already in the weights) gives the convolution's own
    weight and bias (zeros when it has none).
    """
    weight = _float64(conv.weight)
    axis = out_channel_axis(conv)
    bias = _float64(conv.bias) if conv.bias is not None else np.zeros(weight.shape[axis])
    if bn is None or isinstance(bn, FoldedBatchNorm):
        return weight, bias
    if not isinstance(bn, nn.BatchNorm2d):
        raise ValueError("cannot fold a %s into a convolution: only BatchNorm2d" % type(bn).__name__)
    scale, shift = bn_affine(bn)
    shape = [1] * weight.ndim
    shape[axis] = -1
    return weight * scale.reshape(shape), bias * scale + shift


def _check_pair(conv, bn, where):
    if isinstance(conv, (nn.Conv2d, nn.Conv2dTranspose)) and conv.data_format != "NCHW":
        raise ValueError("cannot fold %s: data_format %s (NCHW only)" % (where, conv.data_format))
    if isinstance(conv, nn.Conv2dTranspose) and conv.group != 1:
        raise ValueError("cannot fold %s: a grouped transposed convolution" % where)
    channels = conv.weight.shape[out_channel_axis(conv)]
    if bn.gamma.shape[0] != channels:
        raise ValueError("cannot fold %s: %d BatchNorm channels after %d convolution outputs"
                         % (where, bn.gamma.shape[0], channels))
    if bn.use_batch_statistics:
        raise ValueError("cannot fold %s: the BatchNorm uses batch statistics (use_batch_statistics=True)" % where)


def conv_bn_pairs(network):
    """[(parent cell, conv key, bn key, name)] of every convolution followed by a BatchNorm2d in ``network``."""
    pairs = []
    for prefix, cell in network.cells_and_names():
        children = list(cell.name_cells().items())
        where = prefix + "." if prefix else ""
        if isinstance(cell, nn.SequentialCell):
            # By position: SequentialCell runs its cells in order and replaces them by index.
            for index, ((conv_key, conv), (_, bn)) in enumerate(zip(children, children[1:])):
                if isinstance(conv, CONV_TYPES) and isinstance(bn, nn.BatchNorm2d):
                    pairs.append((cell, index, index + 1, where + conv_key))
            continue
        named = dict(children)
        for bn_key, bn in children:
            conv = named.get("conv" + bn_key[2:]) if bn_key.startswith("bn") else None
            if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, CONV_TYPES):
                pairs.append((cell, "conv" + bn_key[2:], bn_key, where + "conv" + bn_key[2:]))
    return pairs


def _child(parent, key):
    return parent[key] if isinstance(key, int) else getattr(parent, key)


def _set_child(parent, key, cell):
    if isinstance(key, int):
        parent[key] = cell
    else:
        setattr(parent, key, cell)


def _store(conv, weight, bias):
    """Write the folded float64 ``weight`` and ``bias`` into ``conv`` as float32, adding a bias if it had none."""
    conv.weight.set_data(Tensor(weight.astype(np.float32), mstype.float32))
    value = Tensor(bias.astype(np.float32), mstype.float32)
    if conv.bias is not None:
        conv.bias.set_data(value)
        return
    conv.bias = Parameter(value, name=conv.weight.name.rsplit(".", 1)[0] + ".bias")
    if hasattr(conv, "has_bias"):
        conv.has_bias = True


def parameter_count(network):
    """Number of values in the parameters of ``network``."""
    return int(sum(np.prod(p.shape) for p in network.get_parameters()))


def fold_batch_norm(network, enabled=True):
    """Fold every BatchNorm2d of ``network`` that follows a convolution into it, in place; returns ``network``.

    ``enabled`` False (the key eval_config.fold_bn) returns the network unchanged. Call it on a
    network in inference mode with its weights loaded and before its first call; a folded
    network is for inference only (nothing is left to train in its BatchNorms).
    """
    if not enabled:
        return network
    if network.training:
        raise ValueError("BatchNorm folding needs a network in inference mode (set_train(False)); "
                         "a training network must keep its BatchNorms")
    before = parameter_count(network)
    pairs = conv_bn_pairs(network)
    for parent, conv_key, bn_key, where in pairs:  # every pair checked before any is changed
        _check_pair(_child(parent, conv_key), _child(parent, bn_key), where)
    for parent, conv_key, bn_key, where in pairs:
        conv, bn = _child(parent, conv_key), _child(parent, bn_key)
        _store(conv, *folded_weights(conv, bn))
        _set_child(parent, bn_key, FoldedBatchNorm(bn.gamma.shape[0]))
    left = [name for name, cell in network.cells_and_names() if isinstance(cell, nn.BatchNorm2d)]
    if left:
        logger.warning("%d BatchNorm layers follow no convolution and stay: %s", len(left), ", ".join(left[:5]))
    logger.info("folded %d BatchNorm layers into their convolutions: %d -> %d parameter values",
                len(pairs), before, parameter_count(network))
    return network
