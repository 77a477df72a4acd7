"""src/network/bn_fold.py: BatchNorm folded into the convolutions of the eval network and the exported MINDIR.

The network is the small test one (conftest SMALL) with random BatchNorm statistics and
affine parameters away from identity (at their initial values folding would only divide by
sqrt(1 + eps)), offset convs that move the deformable sampling points by pixels, and a
heatmap head with spread-out logits (distinct peaks, so top-K does not hinge on an ulp).

Tolerance: folding changes the rounding of every convolution (w * scale is rounded to float32
once, instead of scaling the float32 output), so the heads agree to a few float32 ulps of
their magnitude accumulated over ~20 layers (tests/agreement.py: HEAD_RTOL, 1e-4 of the largest
head value); detections agree by the tie rule of tests/agreement.py.
"""
import os

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

import export as export_script
import train
from agreement import assert_detections_agree, assert_heads_close, score_maps
from conftest import SMALL, SMALL_TRAIN, make_config, override_args
from eval_helpers import FIXED, argv, randomise_weights
from src.network.bn_fold import FoldedBatchNorm, conv_bn_pairs, fold_batch_norm, out_channel_axis, parameter_count
from src.centernet_det import CenterNetDet
from src.decode import CenterNetDetEval
from src.infer.detector import build_eval_network
from src.utils import list_checkpoints

SHAPE = (1, 3, 128, 96)  # not square


def _twin_networks():
    """Two CenterNetDet of the small configuration holding the same randomised weights."""
    cfg = make_config(SMALL)
    ms.set_seed(3)
    first = CenterNetDet(cfg.net_config, 5)
    randomise_weights(first)
    second = CenterNetDet(cfg.net_config, 5)
    values = {p.name: p.asnumpy() for p in first.get_parameters()}
    for p in second.get_parameters():
        p.set_data(Tensor(values[p.name]))
    return first, second


def _image(seed=1):
    return Tensor(np.random.default_rng(seed).normal(size=SHAPE).astype(np.float32))


def _assert_heads_close(got, expected):
    assert_heads_close([g.asnumpy() for g in got], [e.asnumpy() for e in expected])


def test_folded_network_gives_the_unfolded_heads_and_detections_with_fewer_parameters():
    plain, folded = _twin_networks()
    batch_norms = [c for _, c in plain.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    pairs = conv_bn_pairs(folded)
    assert len(pairs) == len(batch_norms)  # every BatchNorm follows a convolution
    # 4 numbers per channel go (gamma, beta, mean, variance); a bias comes where the conv had none
    convs = [parent[key] if isinstance(key, int) else getattr(parent, key) for parent, key, _, _ in pairs]
    expected_drop = sum(4 * bn.num_features for bn in batch_norms) - sum(
        conv.weight.shape[out_channel_axis(conv)] for conv in convs if conv.bias is None)
    before = parameter_count(folded)
    assert fold_batch_norm(folded) is folded
    assert parameter_count(folded) == before - expected_drop
    assert not [c for _, c in folded.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    assert sum(isinstance(c, FoldedBatchNorm) for _, c in folded.cells_and_names()) == len(batch_norms)
    names = [p.name for p in folded.get_parameters()]
    assert len(names) == len(set(names)) and "backbone.conv1.bias" in names

    image = _image()
    _assert_heads_close(folded(image), plain(image))
    reference = CenterNetDetEval(plain, K=20)
    dets = [CenterNetDetEval(net, K=20)(image).asnumpy()[0] for net in (plain, folded)]
    assert_detections_agree(dets[1], dets[0], lambda: score_maps(reference, image.asnumpy()))


def test_fold_is_a_no_op_when_disabled_and_refuses_a_training_network():
    net, _ = _twin_networks()
    before = {p.name: p.asnumpy().tobytes() for p in net.get_parameters()}  # a copy: asnumpy() shares storage
    assert fold_batch_norm(net, enabled=False) is net
    assert {p.name: p.asnumpy().tobytes() for p in net.get_parameters()} == before
    net.set_train(True)
    with pytest.raises(ValueError, match="needs a network in inference mode"):
        fold_batch_norm(net)
    assert {p.name: p.asnumpy().tobytes() for p in net.get_parameters()} == before  # nothing changed


def test_a_training_checkpoint_loads_then_folds(synthetic_mindrecord, tmp_path):
    """eval.py's network: a checkpoint of train.py (Adam moments, step counters, trained BatchNorm
    statistics) loads into the unfolded network, which is then folded (eval_config.fold_bn)."""
    out = tmp_path / "run"
    assert train.main(override_args(SMALL_TRAIN) + [
        "--mindrecord_dir=%s" % synthetic_mindrecord.mindrecord_dir, "--train_steps=2",
        "--save_checkpoint_path=%s" % out]) == 0
    ckpt = list_checkpoints(str(out / "ckpt_0"))[-1]
    nets = {fold: build_eval_network(make_config(dict(SMALL, **{"eval_config.fold_bn": fold})), 5, ckpt)
            for fold in (False, True)}
    assert parameter_count(nets[True]) < parameter_count(nets[False])
    image = _image(2)
    _assert_heads_close(nets[True].network(image), nets[False].network(image))


def test_exported_mindir_folded_and_unfolded_give_the_same_detections(tmp_path):
    plain, _ = _twin_networks()
    ckpt = str(tmp_path / "random_bn.ckpt")
    ms.save_checkpoint(plain, ckpt)
    outputs, sizes = {}, {}
    for fold in (False, True):
        name = tmp_path / ("folded" if fold else "plain")
        options = dict(FIXED, device_target="CPU", export_load_ckpt=ckpt, export_name=str(name),
                       **{"eval_config.fold_bn": fold, "export_config.input_res": list(SHAPE[2:])})
        assert export_script.main(argv(options)) == 0
        path = str(name) + ".mindir"
        outputs[fold] = nn.GraphCell(ms.load(path))(_image()).asnumpy()[0]
        sizes[fold] = os.path.getsize(path)
    assert sizes[True] < sizes[False]  # BatchNorm's 4 tensors per layer became one bias
    reference = CenterNetDetEval(plain)
    assert_detections_agree(outputs[True], outputs[False], lambda: score_maps(reference, _image().asnumpy()))


def test_onnx_writer_folds_with_the_same_formula():
    """One folding formula: the ONNX graph of the unfolded network (folded by the writer) and of the
    network folded by fold_batch_norm hold the same float32 weights, bit for bit."""
    from onnx import numpy_helper  # after mindspore: the other order breaks mindspore's protobuf modules
    from src.deploy.onnx_export import build_model

    plain, folded = _twin_networks()
    fold_batch_norm(folded)
    models = [build_model(CenterNetDetEval(net), SHAPE[2:]) for net in (plain, folded)]
    weights = [[numpy_helper.to_array(t) for t in m.graph.initializer] for m in models]
    assert len(weights[0]) == len(weights[1])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
