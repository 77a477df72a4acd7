"""Training helpers: optimizer parameter groups and checkpoint I/O.

Checkpoints are written to a hidden temporary name in the target folder and renamed when
complete, so a run killed at any moment never leaves a truncated file as the newest one.
"""
import glob
import logging
import os
import re

import mindspore as ms
from mindspore import Tensor, nn

from src.model_utils.file_io import atomic_path

logger = logging.getLogger(__name__)

CKPT_PREFIX = "checkpoint_centernet"
_CKPT_RE = re.compile(r"^%s-(\d+)_(\d+)\.ckpt$" % CKPT_PREFIX)
HEAD_PREFIXES = ("hm.", "wh.", "reg.")
# EMA copies of the weights in a training checkpoint (src/train/ema.py): ema.<weight name>, ema.updates.
EMA_PREFIX = "ema."
UPDATES_NAME = EMA_PREFIX + "updates"
# Parameters of the training cell that are not network weights: optimizer, loss scale, counters.
_STATE_PREFIXES = ("moment1.", "moment2.")
_STATE_NAMES = {"global_step", "learning_rate", "beta1_power", "beta2_power", "scale_sense",
                "current_iterator_step", "last_overflow_iterator_step"}
# Run metadata saved beside the parameters (checked when resuming). total_steps and
# steps_per_epoch are the learning-rate schedule's; group_size the devices that wrote the
# checkpoint; epoch, epoch_step and epoch_samples the data position after data_step (epoch
# 1-based, its steps done, the images of its order read by the whole group: src.data.train_data.Cursor).
RUN_META_KEYS = ("data_step", "epoch", "epoch_step", "epoch_samples", "num_images", "total_steps",
                 "steps_per_epoch", "batch_size", "group_size", "seed")


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the network."""


def is_state_param(name):
    return (name.startswith(_STATE_PREFIXES) or name.startswith(EMA_PREFIX) or name in _STATE_NAMES
            or name in RUN_META_KEYS)


def split_decay_params(params, rule):
    """(decayed, not decayed) parameters under the named rule of train_config.Adam.decay_filter."""
    if rule == "all":
        return list(params), []
    if rule == "none":
        return [], list(params)
    if rule == "exclude_bias_and_bn":
        keep = [p for p in params if not p.name.endswith((".bias", ".beta", ".gamma"))]
        return keep, [p for p in params if p.name.endswith((".bias", ".beta", ".gamma"))]
    raise ValueError("train_config.Adam.decay_filter must be exclude_bias_and_bn, all or none, got %r" % rule)


def build_optimizer(network, train_cfg, lr, eps):
    """Adam over ``network``'s trainable parameters with the per-step learning rates ``lr``."""
    params = network.trainable_params()
    decay, no_decay = split_decay_params(params, train_cfg.Adam.decay_filter)
    groups = [g for g in ({"params": decay, "weight_decay": float(train_cfg.Adam.weight_decay)},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    groups.append({"order_params": params})
    return nn.Adam(groups, learning_rate=Tensor(lr), eps=eps)


def checkpoint_name(epoch, step_in_epoch):
    return "%s-%d_%d.ckpt" % (CKPT_PREFIX, epoch, step_in_epoch)


def checkpoint_position(path):
    """(epoch, step in epoch) encoded in a training checkpoint's file name."""
    match = _CKPT_RE.match(os.path.basename(path))
    if not match:
        raise CheckpointError("not a training checkpoint name (%s-<epoch>_<step>.ckpt): %s" % (CKPT_PREFIX, path))
    return int(match.group(1)), int(match.group(2))


def list_checkpoints(folder):
    """Complete training checkpoints in ``folder``, oldest first (by epoch, then step)."""
    found = []
    for path in glob.glob(os.path.join(folder, CKPT_PREFIX + "-*.ckpt")):
        match = _CKPT_RE.match(os.path.basename(path))
        if match:
            found.append(((int(match.group(1)), int(match.group(2))), path))
    return [p for _, p in sorted(found)]


def has_ema(saved):
    """True when a checkpoint's name -> value dict holds EMA weights."""
    return UPDATES_NAME in saved


def select_weights(saved, choice, path):
    """The network weights of a checkpoint dict under ``choice`` (ema | raw | auto).

    ``ema`` (and ``auto`` when the checkpoint has them) returns the EMA weights under the
    network's names, with every other network value (BatchNorm statistics) as saved; ``raw``
    the trained weights. ``ema`` on a checkpoint without EMA weights is an error.
    """
    if choice not in ("ema", "raw", "auto"):
        raise ValueError("eval_weights must be ema, raw or auto, got %r" % (choice,))
    use_ema = has_ema(saved) if choice == "auto" else choice == "ema"
    if use_ema and not has_ema(saved):
        raise ValueError("--eval_weights=ema but checkpoint %s holds no EMA weights (train with "
                         "--train_config.ema=true, or use --eval_weights=raw)" % path)
    if not use_ema:
        return dict(saved), False
    chosen = {name: value for name, value in saved.items() if not name.startswith(EMA_PREFIX)}
    for name, value in saved.items():
        if name.startswith(EMA_PREFIX) and name != UPDATES_NAME:
            chosen[name[len(EMA_PREFIX):]] = value
    return chosen, True


def _checkpoint_nbytes(cell, append_dict=None):
    """Approximate size in bytes of the checkpoint of ``cell`` (a Cell or a list of {"name", "data"})."""
    values = ([p.data for p in cell.get_parameters()] if isinstance(cell, nn.Cell)
              else [entry["data"] for entry in cell])
    return sum(int(v.nbytes) for v in values) + 64 * len(values) + 64 * len(append_dict or {})


def save_checkpoint_atomic(cell, path, append_dict=None, setting="--save_checkpoint_path"):
    """ms.save_checkpoint through src.model_utils.file_io.atomic_path (flushed and renamed when complete).

    Neither a killed process nor a crashed machine leaves a truncated file under a checkpoint
    name, and a failed save leaves no temporary (MindSpore's own ``.tmp`` included). A full
    disk raises OSError naming the file, the space it needs and the space free.
    """
    with atomic_path(path, suffix=".ckpt", durable=True, nbytes=_checkpoint_nbytes(cell, append_dict),
                     what="checkpoint", setting=setting) as tmp:
        try:
            ms.save_checkpoint(cell, tmp, append_dict=append_dict)
        finally:
            inner = os.path.splitext(tmp)[0] + ".tmp"  # MindSpore writes here, then renames to tmp
            if os.path.isfile(inner):
                os.remove(inner)
    return path


def prune_checkpoints(folder, keep):
    """Keep the ``keep`` newest training checkpoints of ``folder``."""
    paths = list_checkpoints(folder)
    for path in paths[:max(0, len(paths) - keep)]:
        os.remove(path)


def read_checkpoint(path):
    """name -> Parameter (or str) of a MindSpore checkpoint, with a clear error when unreadable."""
    if not os.path.isfile(path):
        raise CheckpointError("checkpoint not found: %s" % path)
    try:
        return ms.load_checkpoint(path)
    except (ValueError, RuntimeError, TypeError) as err:
        raise CheckpointError("cannot read checkpoint %s: %s" % (path, err)) from err


def _dtype_of(value):
    """The MindSpore dtype of a checkpoint value (Parameter or Tensor), None for other values."""
    return getattr(value, "dtype", None)


def _is_float(dtype):
    return dtype in (ms.float16, ms.bfloat16, ms.float32, ms.float64)


def _short(names, limit=6):
    names = list(names)
    return ", ".join(names[:limit]) + (" ... (%d in all)" % len(names) if len(names) > limit else "")


def load_network_weights(network, path, filter_weight=False, complete=False, weights="raw"):
    """Load the network weights in ``path`` (backbone-only, network or training checkpoint).

    ``weights`` picks the trained (raw) or EMA weights of a training checkpoint
    (select_weights: ema | raw | auto).

    Missing, unexpected and shape-mismatched parameters are reported by name. A shape
    mismatch is an error, except in the heads when ``filter_weight`` is set (fine-tuning to
    another class count): those heads keep their fresh initialisation. With ``complete``
    (evaluation, export, detection) a checkpoint that leaves any network parameter at its
    random initialisation is an error. Returns the number of parameters loaded.
    """
    saved, ema = select_weights(read_checkpoint(path), weights, path)
    own = {p.name: p for p in network.get_parameters()}
    matched, mismatched, unexpected = {}, [], []
    for name, value in saved.items():
        if name in own:
            if tuple(value.shape) == tuple(own[name].shape):
                matched[name] = value
            else:
                mismatched.append("%s: checkpoint %s, network %s" % (name, tuple(value.shape), tuple(own[name].shape)))
        elif not is_state_param(name):
            unexpected.append(name)
    if not matched:
        raise CheckpointError("checkpoint %s holds no parameter of this network (first names: %s)"
                              % (path, _short(saved)))
    head_mismatch = [m for m in mismatched if m.startswith(HEAD_PREFIXES)]
    body_mismatch = [m for m in mismatched if not m.startswith(HEAD_PREFIXES)]
    if body_mismatch:
        raise CheckpointError("checkpoint %s does not fit the network (block_type/block_class?): %s"
                              % (path, _short(body_mismatch, 4)))
    if head_mismatch and not filter_weight:
        raise CheckpointError("checkpoint %s has heads of another shape (num_classes/cat_spec_wh?): %s; "
                              "pass --filter_weight=true to keep fresh heads" % (path, _short(head_mismatch, 4)))
    if head_mismatch:
        logger.warning("filter_weight: heads left at their initialisation: %s", _short(head_mismatch, 4))
    missing = [n for n in own if n not in saved]
    if complete and missing:
        raise CheckpointError("checkpoint %s leaves %d of the %d network parameters uninitialised (%s): it was "
                              "written for another network (net_config.block_type/block_class?) or holds the "
                              "backbone only; use a checkpoint of the whole network"
                              % (path, len(missing), len(own), _short(missing, 4)))
    retyped = [n for n, v in matched.items() if _dtype_of(v) != own[n].dtype]
    described = ["%s: checkpoint %s, network %s" % (n, _dtype_of(matched[n]), own[n].dtype) for n in retyped]
    if any(not (_is_float(_dtype_of(matched[n])) and _is_float(own[n].dtype)) for n in retyped):
        raise CheckpointError("checkpoint %s stores parameters in a type the network cannot take (%s): use a "
                              "checkpoint written by train.py or tools/convert_official_ckpt.py"
                              % (path, _short(described, 4)))
    if retyped:  # a float checkpoint of another precision (fp16 weights): load_param_into_net converts it
        logger.info("checkpoint %s: %d parameters converted to the network's float type (%s)", path, len(retyped),
                    _short(described, 2))
    if unexpected:
        logger.warning("checkpoint %s: %d parameters unknown to the network, ignored: %s",
                       path, len(unexpected), _short(unexpected))
    backbone_missing = [n for n in missing if n.startswith("backbone.")]
    if backbone_missing:
        logger.warning("checkpoint %s lacks %d backbone parameters: %s", path, len(backbone_missing),
                       _short(backbone_missing))
    elif missing:
        logger.info("checkpoint %s covers the backbone only; %d up-path/head parameters start fresh: %s", path,
                    len(missing), _short(missing))
    ms.load_param_into_net(network, matched, strict_load=False)
    logger.info("loaded %d of %d network parameters from %s%s", len(matched), len(own), path,
                " (EMA weights)" if ema else "")
    return len(matched)


def saved_run_meta(saved, path):
    """The run metadata (RUN_META_KEYS present) of a checkpoint's name -> value dict."""
    meta = {k: int(saved[k].asnumpy()) for k in RUN_META_KEYS if k in saved}
    if "data_step" not in meta:
        raise CheckpointError("checkpoint %s is not a training checkpoint of train.py (no data_step): "
                              "use it with --load_checkpoint_path and --resume=false" % path)
    return meta


def load_train_state(train_cell, path, expected_meta, saved=None):
    """Restore every parameter of the training cell (weights, Adam, step, loss scale, EMA) from ``path``.

    ``expected_meta`` (run settings that fix the data order and schedule) must equal the
    saved ones present. ``saved``: the checkpoint already read. Returns the saved run
    metadata (data_step, epoch...).
    """
    saved = read_checkpoint(path) if saved is None else saved
    meta = saved_run_meta(saved, path)
    differing = ["%s: checkpoint %d, now %d" % (k, meta[k], v) for k, v in expected_meta.items()
                 if k in meta and meta[k] != v]
    if differing:
        raise CheckpointError("cannot resume from %s, the run settings differ: %s" % (path, "; ".join(differing)))
    own = {p.name: p for p in train_cell.get_parameters()}
    missing = [n for n in own if n not in saved]
    mismatched = ["%s: checkpoint %s, now %s" % (n, tuple(saved[n].shape), tuple(p.shape))
                  for n, p in own.items() if n in saved and tuple(saved[n].shape) != tuple(p.shape)]
    if missing or mismatched:
        raise CheckpointError("cannot resume from %s, it was written by another configuration: %s"
                              % (path, _short(["missing " + m for m in missing] + mismatched, 4)))
    retyped = ["%s: checkpoint %s, now %s" % (n, _dtype_of(saved[n]), p.dtype) for n, p in own.items()
               if _dtype_of(saved[n]) != p.dtype]
    if retyped:
        raise CheckpointError("cannot resume from %s: %d of its %d training-state values have another type than "
                              "train.py saves (%s), so it was converted after training; resume from the checkpoint "
                              "as train.py wrote it, or start a new run from its weights with --resume=false "
                              "--load_checkpoint_path=%s" % (path, len(retyped), len(own), _short(retyped, 2), path))
    ms.load_param_into_net(train_cell, {n: saved[n] for n in own}, strict_load=True)
    return meta
