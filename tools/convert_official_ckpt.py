"""Convert official CenterNet ResNet-DCN weights and torchvision ImageNet ResNets to MindSpore.

    # a detector published by the CenterNet authors (ctdet_coco_resdcn18.pth, ctdet_coco_resdcn101.pth)
    python tools/convert_official_ckpt.py --source ctdet_coco_resdcn101.pth --output centernet_resdcn101.ckpt
    # an ImageNet backbone (torchvision resnet18/resnet101 weights) for train.py --load_checkpoint_path
    python tools/convert_official_ckpt.py --source resnet101-imagenet.pth --backbone_only \
        --output resnet101_backbone.ckpt

Reading ``.pth`` files needs PyTorch (an optional dependency: ``pip install torch``; on the
project's machines ``pip install torch==2.13.0`` installs the CPU build). The file is read with
``torch.load(weights_only=True)``, which refuses arbitrary Python objects; official CenterNet
files (``{'epoch', 'state_dict', 'optimizer'}``) and torchvision files load that way. Only if
that fails and ``--trust_pickle`` is given is the file unpickled in full (which can run code
embedded in the file: use it only for files from a source you trust).

Every tensor of the source is accounted for: it is converted, or it is one of the explicitly
skipped kinds (BatchNorm ``num_batches_tracked`` counters; the ImageNet classifier ``fc.*``
with ``--backbone_only``). Anything else, a missing tensor or a shape that does not fit the
architecture read from the checkpoint, stops the conversion with an error naming the key, and
no output file is written (the output is written under a temporary name and renamed when
complete).

Mapping (official PyTorch name -> this project's MindSpore name):

* trunk ``conv1``, ``bn1``, ``layerN.i.*`` -> ``backbone.`` + the same name;
* BatchNorm ``weight/bias/running_mean/running_var`` -> ``gamma/beta/moving_mean/moving_variance``;
* ``deconv_layers.{0,6,12}`` (DCNv2): ``weight``/``bias`` unchanged; ``conv_offset_mask`` output
  channels permuted from DCNv2's layout (channel 2k = dy, 2k+1 = dx of kernel point k, 18+k
  the mask) to MindSpore's (dx of the 9 points, dy of the 9 points, the 9 masks);
* ``deconv_layers.{3,9,15}.weight`` (transposed convs): unchanged; PyTorch's ConvTranspose2d
  and MindSpore's Conv2dTranspose both store (in, out, kh, kw) and neither flips the kernel
  (checked numerically by tests/tools/test_convert_official_ckpt.py);
* heads ``hm``, ``wh``, ``reg`` (``.0`` 3x3 conv, ``.2`` 1x1 conv): unchanged.

One file of about 560 lines on purpose: a standalone converter whose parts (the official layout,
the architecture read from a state dict, the mapping, reading .pth files) only make sense
together, and which nothing else in the project imports.
"""
from src.model_utils import signals

if __name__ == "__main__":
    signals.install()  # before the imports below load MindSpore (src/model_utils/signals.py)

import argparse  # noqa: E402
import inspect  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from collections import OrderedDict  # noqa: E402
from collections.abc import Mapping  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from src.utils import CheckpointError  # noqa: E402

logger = logging.getLogger("convert_official_ckpt")

TORCH_MISSING = ("reading .pth files needs PyTorch, which is not installed: install it with "
                 "`pip install torch` (any version >= 1.13; on this project's machines "
                 "`pip install torch==2.13.0` installs the CPU build) and run the converter again")

# ResNet depth of (block type, blocks per stage), as torchvision and CenterNet's resnet_spec.
DEPTHS = {("BasicBlock", (2, 2, 2, 2)): 18, ("BasicBlock", (3, 4, 6, 3)): 34,
          ("Bottleneck", (3, 4, 6, 3)): 50, ("Bottleneck", (3, 4, 23, 3)): 101,
          ("Bottleneck", (3, 8, 36, 3)): 152}
EXPANSION = {"BasicBlock": 1, "Bottleneck": 4}
STAGE_PLANES = (64, 128, 256, 512)
UP_CHANNELS = (256, 128, 64)  # the three DCN + up-conv stages of the official ResNet-DCN
KERNEL_POINTS = 9  # 3x3 deformable kernel
BN_RENAME = (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
             ("running_var", "moving_variance"))
# Key prefixes of other CenterNet architectures and tasks, for a helpful error.
FOREIGN_PREFIXES = (("base.", "DLA-34 (ctdet_*_dla_*)"), ("dla_up.", "DLA-34 (ctdet_*_dla_*)"),
                    ("ida_up.", "DLA-34 (ctdet_*_dla_*)"), ("pre.", "Hourglass-104 (ctdet_*_hg)"),
                    ("kps.", "Hourglass-104 (ctdet_*_hg)"), ("cnvs.", "Hourglass-104 (ctdet_*_hg)"),
                    ("cnvs_.", "Hourglass-104 (ctdet_*_hg)"), ("inters.", "Hourglass-104 (ctdet_*_hg)"),
                    ("inters_.", "Hourglass-104 (ctdet_*_hg)"))
OTHER_TASK_HEADS = ("hps.", "hm_hp.", "hp_offset.", "dep.", "rot.", "dim.", "hm_t.", "hm_l.", "hm_b.",
                    "hm_r.", "hm_c.", "reg_t.", "reg_l.", "reg_b.", "reg_r.")
DETECTOR_PREFIXES = ("deconv_layers.", "hm.", "wh.", "reg.")


def dcn_offset_permutation(points=KERNEL_POINTS):
    """Index array p: our channel c takes the official channel p[c] of ``conv_offset_mask``.

    Official DCNv2: channel 2k = dy and 2k+1 = dx of kernel point k (row-major), then the
    ``points`` mask logits. Ours (ops.deformable_conv2d): the dx of every point, then the dy
    of every point, then the masks.
    """
    return np.concatenate([2 * np.arange(points) + 1, 2 * np.arange(points),
                           2 * points + np.arange(points)])


class _Entry:
    """One official tensor: its MindSpore name, expected shape and value transform."""
    __slots__ = ("target", "shape", "transform")

    def __init__(self, target, shape, transform=None):
        self.target = target
        self.shape = tuple(int(s) for s in shape)
        self.transform = transform


class Architecture:
    """What a checkpoint holds, read from its tensor names and shapes."""

    def __init__(self, block_type, block_class, backbone_only, num_classes=None, head_conv=None,
                 cat_spec_wh=False, reg_offset=True):
        self.block_type = block_type
        self.block_class = tuple(block_class)
        self.backbone_only = backbone_only
        self.num_classes = num_classes
        self.head_conv = head_conv
        self.cat_spec_wh = cat_spec_wh
        self.reg_offset = reg_offset

    @property
    def depth(self):
        return DEPTHS.get((self.block_type, self.block_class))

    @property
    def name(self):
        trunk = "resnet%s" % self.depth if self.depth else "resnet(%s %s)" % (self.block_type, list(self.block_class))
        if self.backbone_only:
            return trunk + " backbone"
        return ("resdcn%s" % self.depth if self.depth else trunk + "-dcn") + " detector"

    def heads(self):
        heads = OrderedDict([("hm", self.num_classes), ("wh", 2 * self.num_classes if self.cat_spec_wh else 2)])
        if self.reg_offset:
            heads["reg"] = 2
        return heads


class ConversionSummary:
    """Counts and settings of one conversion (``lines()`` for the log, ``flags()`` for train/eval)."""

    def __init__(self, arch):
        self.arch = arch
        self.converted = 0
        self.elements = 0
        self.skipped_num_batches_tracked = []
        self.dropped = []
        self.stripped_module_prefix = 0
        self.permuted = []

    def flags(self, defaults=None):
        """Command-line settings train.py/eval.py need for this network.

        ``defaults`` (a net_config): head options equal to it are left out.
        """
        arch = self.arch
        flags = ["--net_config.block_type=%s" % arch.block_type,
                 "--net_config.block_class=[%s]" % ",".join(str(n) for n in arch.block_class)]
        if arch.backbone_only:
            return flags
        for key, value in (("head_conv", arch.head_conv), ("cat_spec_wh", arch.cat_spec_wh),
                           ("reg_offset", arch.reg_offset)):
            if defaults is None or getattr(defaults, key, None) != value:
                flags.append("--net_config.%s=%s" % (key, str(value).lower() if isinstance(value, bool) else value))
        flags.append("--dataset_config.num_classes=%d" % arch.num_classes)
        return flags

    def lines(self):
        arch = self.arch
        out = ["architecture: %s (%s, blocks %s)" % (arch.name, arch.block_type, list(arch.block_class))]
        if not arch.backbone_only:
            out.append("heads: %s, head_conv %d" % (", ".join("%s %d" % kv for kv in arch.heads().items()),
                                                    arch.head_conv))
        out.append("converted %d tensors (%d values)" % (self.converted, self.elements))
        if self.stripped_module_prefix:
            out.append("stripped the DataParallel prefix 'module.' from %d names" % self.stripped_module_prefix)
        if self.permuted:
            out.append("permuted the offset/mask channels of %d DCN offset convs (%s) from DCNv2's "
                       "interleaved (dy, dx) layout to MindSpore's (dx..., dy..., mask...)"
                       % (len(self.permuted) // 2, ", ".join(sorted({n.rsplit(".", 1)[0] for n in self.permuted}))))
        out.append("skipped %d BatchNorm num_batches_tracked counters (not used at inference; MindSpore "
                   "has no such parameter)" % len(self.skipped_num_batches_tracked))
        if self.dropped:
            out.append("dropped the ImageNet classifier: %s (not part of the detector)" % ", ".join(self.dropped))
        return out


def _conv(target, out_channels, in_channels, kernel):
    return _Entry(target, (out_channels, in_channels, kernel, kernel))


def _bn_entries(spec, bn_prefixes, official, ours, channels):
    bn_prefixes.add(official)
    for src, dst in BN_RENAME:
        spec[official + src] = _Entry(ours + dst, (channels,))


def official_spec(arch):
    """(OrderedDict official name -> _Entry, set of BatchNorm prefixes) of the architecture."""
    spec, bn_prefixes = OrderedDict(), set()
    spec["conv1.weight"] = _conv("backbone.conv1.weight", 64, 3, 7)
    _bn_entries(spec, bn_prefixes, "bn1.", "backbone.bn1.", 64)
    expansion = EXPANSION[arch.block_type]
    in_channels = 64
    for stage, (planes, blocks) in enumerate(zip(STAGE_PLANES, arch.block_class), start=1):
        stride = 1 if stage == 1 else 2
        for index in range(blocks):
            name = "layer%d.%d." % (stage, index)
            ours = "backbone." + name
            if arch.block_type == "Bottleneck":
                convs = ((planes, in_channels, 1), (planes, planes, 3), (planes * 4, planes, 1))
            else:
                convs = ((planes, in_channels, 3), (planes, planes, 3))
            for k, (cout, cin, kernel) in enumerate(convs, start=1):
                spec["%sconv%d.weight" % (name, k)] = _conv("%sconv%d.weight" % (ours, k), cout, cin, kernel)
                _bn_entries(spec, bn_prefixes, "%sbn%d." % (name, k), "%sbn%d." % (ours, k), cout)
            if index == 0 and (stride != 1 or in_channels != planes * expansion):
                spec[name + "downsample.0.weight"] = _conv(ours + "downsample.0.weight", planes * expansion,
                                                           in_channels, 1)
                _bn_entries(spec, bn_prefixes, name + "downsample.1.", ours + "downsample.1.", planes * expansion)
            in_channels = planes * expansion
    if arch.backbone_only:
        return spec, bn_prefixes
    permutation = dcn_offset_permutation()
    for stage, planes in enumerate(UP_CHANNELS):
        base = 6 * stage
        dcn = "deconv_layers.%d." % base
        spec[dcn + "weight"] = _conv(dcn + "weight", planes, in_channels, 3)
        spec[dcn + "bias"] = _Entry(dcn + "bias", (planes,))
        spec[dcn + "conv_offset_mask.weight"] = _Entry(dcn + "conv_offset_mask.weight",
                                                       (3 * KERNEL_POINTS, in_channels, 3, 3),
                                                       lambda w: w[permutation])
        spec[dcn + "conv_offset_mask.bias"] = _Entry(dcn + "conv_offset_mask.bias", (3 * KERNEL_POINTS,),
                                                     lambda b: b[permutation])
        _bn_entries(spec, bn_prefixes, "deconv_layers.%d." % (base + 1), "deconv_layers.%d." % (base + 1), planes)
        up = "deconv_layers.%d.weight" % (base + 3)
        spec[up] = _Entry(up, (planes, planes, 4, 4))  # (in, out, kh, kw) in both frameworks
        _bn_entries(spec, bn_prefixes, "deconv_layers.%d." % (base + 4), "deconv_layers.%d." % (base + 4), planes)
        in_channels = planes
    for head, channels in arch.heads().items():
        if arch.head_conv > 0:
            spec[head + ".0.weight"] = _conv(head + ".0.weight", arch.head_conv, in_channels, 3)
            spec[head + ".0.bias"] = _Entry(head + ".0.bias", (arch.head_conv,))
            spec[head + ".2.weight"] = _conv(head + ".2.weight", channels, arch.head_conv, 1)
            spec[head + ".2.bias"] = _Entry(head + ".2.bias", (channels,))
        else:  # official: a bare conv named ``hm``; ours: a one-cell SequentialCell ``hm.0``
            spec[head + ".weight"] = _conv(head + ".0.weight", channels, in_channels, 1)
            spec[head + ".bias"] = _Entry(head + ".0.bias", (channels,))
    return spec, bn_prefixes


def _shape(value):
    return tuple(int(s) for s in getattr(value, "shape", ()))


def _strip_module_prefix(state_dict):
    """Remove DataParallel's ``module.`` prefix; (new dict, number of names changed)."""
    out, stripped = OrderedDict(), 0
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointError("state dict key %r is not a string: not a PyTorch state dict" % (key,))
        name = key
        if key.startswith("module."):
            name, stripped = key[len("module."):], stripped + 1
        if name in out:
            raise CheckpointError("state dict holds both %r and its DataParallel form 'module.%s'" % (name, name))
        out[name] = value
    return out, stripped


def _reject_foreign(state_dict):
    for key in state_dict:
        for prefix, what in FOREIGN_PREFIXES:
            if key.startswith(prefix):
                raise CheckpointError("key %r: this looks like a %s checkpoint; only ResNet-DCN checkpoints "
                                      "(ctdet_*_resdcn18/resdcn101, arch resdcn_*) and torchvision ResNets "
                                      "(--backbone_only) convert to this network" % (key, what))


def _stage_blocks(state_dict, stage):
    pattern = re.compile(r"^layer%d\.(\d+)\." % stage)
    indices = {int(m.group(1)) for m in map(pattern.match, state_dict) if m}
    return max(indices) + 1 if indices else 0


def _head_out(state_dict, head):
    """(output channels, head_conv, key) of a head, or None when absent."""
    if head + ".2.weight" in state_dict:
        return _shape(state_dict[head + ".2.weight"])[0], _shape(state_dict.get(head + ".0.weight"))[:1], \
            head + ".2.weight"
    if head + ".weight" in state_dict:
        return _shape(state_dict[head + ".weight"])[0], (0,), head + ".weight"
    return None


def infer_architecture(state_dict, backbone_only=False):
    """Read block type, blocks per stage and (for a detector) the heads from names and shapes."""
    if "layer1.0.conv3.weight" in state_dict:
        block_type = "Bottleneck"
    elif "layer1.0.conv1.weight" in state_dict:
        block_type = "BasicBlock"
    else:
        raise CheckpointError("no ResNet trunk: 'layer1.0.conv1.weight' is missing (first keys: %s)"
                              % ", ".join(list(state_dict)[:5]))
    block_class = tuple(_stage_blocks(state_dict, stage) for stage in range(1, 5))
    if 0 in block_class:
        raise CheckpointError("no ResNet stage layer%d in the checkpoint" % (block_class.index(0) + 1))
    if backbone_only:
        return Architecture(block_type, block_class, True)
    hm = _head_out(state_dict, "hm")
    if hm is None:
        if "fc.weight" in state_dict:
            raise CheckpointError("key 'fc.weight': an ImageNet classifier without CenterNet heads; "
                                  "convert it with --backbone_only")
        raise CheckpointError("no 'hm' head (hm.0.weight/hm.2.weight): not a CenterNet detection checkpoint; "
                              "for an ImageNet ResNet use --backbone_only")
    dcn_weight = state_dict.get("deconv_layers.0.weight")
    if dcn_weight is not None and "deconv_layers.0.conv_offset_mask.weight" not in state_dict \
            and _shape(dcn_weight)[2:] == (4, 4):
        raise CheckpointError("key 'deconv_layers.0.weight' is a plain transposed conv: this is the non-DCN "
                              "ResNet (official arch res_*); only ResNet-DCN (resdcn_*) converts to this network")
    num_classes, head_conv, hm_key = hm
    if not head_conv:
        raise CheckpointError("key %r has no matching 'hm.0.weight'" % hm_key)
    wh = _head_out(state_dict, "wh")
    if wh is None:
        raise CheckpointError("no 'wh' head (wh.0.weight/wh.2.weight) in the checkpoint")
    if wh[0] not in (2, 2 * num_classes):
        raise CheckpointError("key %r has %d output channels: expected 2 or 2 x %d classes"
                              % (wh[2], wh[0], num_classes))
    return Architecture(block_type, block_class, False, num_classes=num_classes, head_conv=head_conv[0],
                        cat_spec_wh=wh[0] == 2 * num_classes and num_classes != 1,
                        reg_offset=_head_out(state_dict, "reg") is not None)


def _to_numpy(key, value):
    if hasattr(value, "detach"):  # a torch.Tensor
        value = value.detach().cpu()
        if getattr(value, "is_floating_point", lambda: False)():
            value = value.float()
        value = value.numpy()
    if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.floating):
        raise CheckpointError("key %r holds a %s, not a floating-point tensor" % (key, type(value).__name__))
    return np.ascontiguousarray(value, dtype=np.float32)


def _unmapped_hint(key, backbone_only):
    if backbone_only and key.startswith(DETECTOR_PREFIXES):
        return "a CenterNet detector checkpoint: convert it without --backbone_only"
    if not backbone_only and key.startswith("fc."):
        return "an ImageNet classifier layer: convert ImageNet ResNets with --backbone_only"
    if key.startswith(OTHER_TASK_HEADS):
        return "a head of another CenterNet task (multi_pose/ddd/exdet); only ctdet (hm, wh, reg) converts"
    if re.match(r"^deconv_layers\.\d+\.bias$", key):
        return "the official up-convolutions have no bias (deconv_with_bias=False)"
    return "not a parameter of the official ResNet%s" % ("" if backbone_only else "-DCN detector")


def convert_state_dict(state_dict, backbone_only=False, num_classes=None):
    """Map an official/torchvision state dict to this project's parameters.

    ``state_dict``: name -> torch.Tensor or numpy array (``module.`` prefixes allowed).
    ``num_classes``: when given, the class count of a detector must equal it.
    Returns (OrderedDict MindSpore name -> float32 numpy array, ConversionSummary). Raises
    CheckpointError naming the first offending key for anything unmapped, missing or mis-shaped.
    """
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise CheckpointError("expected a non-empty state dict (name -> tensor), got %s" % type(state_dict).__name__)
    state_dict, stripped = _strip_module_prefix(state_dict)
    _reject_foreign(state_dict)
    arch = infer_architecture(state_dict, backbone_only)
    if not backbone_only and num_classes is not None and arch.num_classes != int(num_classes):
        key = _head_out(state_dict, "hm")[2]
        raise CheckpointError("key %r: the checkpoint has %d classes, but %d are expected; pass --num_classes=%d "
                              "to convert it, and --dataset_config.num_classes=%d to train.py/eval.py"
                              % (key, arch.num_classes, int(num_classes), arch.num_classes, arch.num_classes))
    spec, bn_prefixes = official_spec(arch)
    summary = ConversionSummary(arch)
    summary.stripped_module_prefix = stripped
    arrays = {}
    for key, value in state_dict.items():
        if key.endswith(".num_batches_tracked") and key[:-len("num_batches_tracked")] in bn_prefixes:
            summary.skipped_num_batches_tracked.append(key)
            continue
        if backbone_only and key.startswith("fc."):
            summary.dropped.append(key)
            continue
        entry = spec.get(key)
        if entry is None:
            raise CheckpointError("key %r %s is not mapped: %s (architecture read from the checkpoint: %s)"
                                  % (key, _shape(value), _unmapped_hint(key, backbone_only), arch.name))
        if _shape(value) != entry.shape:
            raise CheckpointError("key %r has shape %s, expected %s for %s" % (key, _shape(value), entry.shape,
                                                                             arch.name))
        arrays[key] = _to_numpy(key, value)
    missing = [key for key in spec if key not in arrays]
    if missing:
        raise CheckpointError("key %r is missing from the checkpoint (%d missing in all) for %s"
                              % (missing[0], len(missing), arch.name))
    params = OrderedDict()
    for key, entry in spec.items():
        value = arrays[key]
        if entry.transform is not None:
            value = np.ascontiguousarray(entry.transform(value))
            summary.permuted.append(key)
        params[entry.target] = value
        summary.converted += 1
        summary.elements += int(value.size)
    return params, summary


# ----------------------------------------------------------------------------- files


def _describe(obj):
    if isinstance(obj, Mapping):
        return "a dict with keys %s" % ", ".join(repr(k) for k in list(obj)[:8])
    return "a %s" % type(obj).__name__


def extract_state_dict(obj, path="checkpoint"):
    """The state dict inside a loaded .pth object: ``obj['state_dict']`` or ``obj`` itself; (sd, meta)."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        meta = {k: v for k, v in obj.items() if k != "state_dict" and isinstance(v, (int, float, str))}
        return obj["state_dict"], meta
    if isinstance(obj, Mapping) and obj and all(hasattr(v, "shape") for v in obj.values()):
        return obj, {}
    raise CheckpointError("%s is not a model checkpoint: expected a state dict of tensors or a dict with "
                          "'state_dict', found %s" % (path, _describe(obj)))


def read_pth(path, trust_pickle=False):
    """Load a PyTorch checkpoint on the CPU; (state dict, metadata such as the epoch).

    ``torch.load(weights_only=True)`` first: it accepts tensors, containers and plain values
    (the official files' epoch and optimizer state), nothing executable. If that fails,
    ``trust_pickle`` allows full unpickling; without it the error says so.
    """
    try:
        import torch
    except ImportError as err:
        raise CheckpointError(TORCH_MISSING) from err
    if not os.path.isfile(path):
        raise CheckpointError("source checkpoint not found: %s" % path)
    safe_available = "weights_only" in inspect.signature(torch.load).parameters
    safe_error = None
    if safe_available:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            return extract_state_dict(obj, path)
        except CheckpointError:
            raise
        except Exception as err:  # pylint: disable=broad-except  (torch raises many types on bad files)
            safe_error = "%s: %s" % (type(err).__name__, str(err).strip().splitlines()[0] if str(err).strip() else "")
    if not trust_pickle:
        if safe_error is None:
            raise CheckpointError("torch %s has no torch.load(weights_only=True); install torch >= 1.13 or, for a "
                                  "file you trust, pass --trust_pickle" % torch.__version__)
        raise CheckpointError("cannot read %s as a PyTorch checkpoint with torch.load(weights_only=True): %s. If it "
                              "is a checkpoint from a source you trust that stores other Python objects, pass "
                              "--trust_pickle to unpickle it in full (this can run code embedded in the file)"
                              % (path, safe_error))
    logger.warning("%s: safe loading failed (%s); unpickling in full because --trust_pickle was given",
                   path, safe_error)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False) if safe_available else \
            torch.load(path, map_location="cpu")
    except Exception as err:  # pylint: disable=broad-except
        raise CheckpointError("cannot read %s as a PyTorch checkpoint: %s: %s" % (path, type(err).__name__, err)) \
            from err
    return extract_state_dict(obj, path)


def check_against_network(params, summary, config_path=None):
    """Build this project's network for the checkpoint's settings and compare every name and shape."""
    from src.model_utils.config import get_config
    from src.resnet101 import ResNet

    arch = summary.arch
    argv = summary.flags() + (["--config_path=%s" % config_path] if config_path else [])
    cfg = get_config(argv)
    if arch.backbone_only:
        network = ResNet(arch.block_type, list(arch.block_class))
        own = {"backbone." + p.name: tuple(p.shape) for p in network.get_parameters()}
    else:
        from src.centernet_det import CenterNetDet
        network = CenterNetDet(cfg.net_config, cfg.dataset_config.num_classes)
        own = {p.name: tuple(p.shape) for p in network.get_parameters()}
    problems = ["%s: missing" % n for n in own if n not in params]
    problems += ["%s: not in the network" % n for n in params if n not in own]
    problems += ["%s: converted %s, network %s" % (n, params[n].shape, own[n]) for n in params
                 if n in own and tuple(params[n].shape) != own[n]]
    if problems:
        raise CheckpointError("the converted parameters do not fit the network built with %s: %s"
                              % (" ".join(argv), "; ".join(problems[:5])))


def write_checkpoint(params, path, overwrite=False):
    """Save name -> array as a MindSpore checkpoint, atomically (temporary name, then rename)."""
    from mindspore import Tensor
    from src.utils import save_checkpoint_atomic

    if os.path.exists(path) and not overwrite:
        raise CheckpointError("output %s exists; pass --overwrite to replace it" % path)
    save_checkpoint_atomic([{"name": name, "data": Tensor(value)} for name, value in params.items()], path,
                           setting="--output")
    return path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert an official CenterNet ResNet-DCN checkpoint (ctdet_*_resdcn18/101.pth) or, with "
                    "--backbone_only, a torchvision ImageNet ResNet into a MindSpore checkpoint of this project.")
    parser.add_argument("--source", required=True, help="the PyTorch .pth file")
    parser.add_argument("--output", required=True, help="the MindSpore checkpoint to write (*.ckpt)")
    parser.add_argument("--backbone_only", action="store_true",
                        help="the source is a torchvision-style ImageNet ResNet: convert the trunk, drop fc.*")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="expected class count of a detector (default: dataset_config.num_classes of the config)")
    parser.add_argument("--config_path", default=None, help="yaml config overlay (default: default_config.yaml)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--trust_pickle", action="store_true",
                        help="if torch.load(weights_only=True) fails, unpickle the file in full (runs any code "
                             "the file holds: only for files from a source you trust)")
    args = parser.parse_args(argv)
    if not args.output.endswith(".ckpt"):
        parser.error("--output must end with .ckpt (MindSpore appends it otherwise)")
    return args


def convert_file(args):
    """The whole conversion for parsed arguments; returns the ConversionSummary."""
    from src.model_utils.config import get_config

    if os.path.exists(args.output) and not args.overwrite:
        raise CheckpointError("output %s exists; pass --overwrite to replace it" % args.output)
    cfg = get_config(["--config_path=%s" % args.config_path] if args.config_path else [])
    expected_classes = args.num_classes if args.num_classes is not None else cfg.dataset_config.num_classes
    state_dict, meta = read_pth(args.source, args.trust_pickle)
    logger.info("read %s: %d tensors%s", args.source, len(state_dict),
                "".join(", %s %s" % kv for kv in sorted(meta.items())))
    params, summary = convert_state_dict(state_dict, args.backbone_only,
                                         None if args.backbone_only else expected_classes)
    check_against_network(params, summary, args.config_path)
    write_checkpoint(params, args.output, args.overwrite)
    for line in summary.lines():
        logger.info("%s", line)
    logger.info("wrote %s (%d parameters)", args.output, summary.converted)
    flags = " ".join(summary.flags(cfg.net_config))
    if summary.arch.backbone_only:
        logger.info("use it to initialise training: python train.py --load_checkpoint_path=%s %s",
                    args.output, flags)
    else:
        logger.info("pass these settings to train.py/eval.py/export.py: --load_checkpoint_path=%s %s",
                    args.output, flags)
    return summary


def main(argv=None):
    """Exit 0, 1 when the checkpoint cannot be converted, 2 for other bad input, 130/143 on Ctrl-C/SIGTERM."""
    from src.model_utils.entry import guarded
    args = parse_args(argv)
    refused = []

    def action():
        try:
            convert_file(args)
        except CheckpointError as err:
            logger.error("conversion failed, nothing written: %s", err)
            refused.append(err)
    code = guarded(action)
    return 1 if refused else code


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    sys.exit(main())
