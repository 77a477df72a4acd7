"""Official CenterNet / torchvision checkpoint conversion: layouts, numerical equivalence, bad input.

The equivalence tests build a PyTorch CenterNet ResNet-DCN with the official parameter names
and DCNv2 semantics (testkit/official_centernet_torch.py), give it random weights, BN
statistics and deformable offsets, save it as the official code does, convert the file with
the tool and compare our MindSpore network's heads and decoded detections with PyTorch's.
They need PyTorch (a test dependency): skipped without it, failed under CI=true.
"""
import argparse
import logging
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn

from conftest import require_module
from src.centernet_det import CenterNetDet
from src.decode import CenterNetDetEval, DetectionDecode
from src.network.deform_conv import ModulatedDeformConv2d
from src.model_utils.config import get_config
from src.post_process import post_process_image
from src.infer.soft_nms import SoftNMS
from src.utils import CheckpointError, load_network_weights
from tools import convert_official_ckpt as conv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOL = 1e-4
R18_FLAGS = ["--net_config.block_type=BasicBlock", "--net_config.block_class=[2,2,2,2]"]
OFFICIAL_PARAMS = {18: 14437349, 101: 49673189}  # trainable parameters of ctdet resdcn18/101 (80 classes)
DEPTH_FLAGS = {18: R18_FLAGS, 101: []}  # default_config.yaml is ResNet-101


@pytest.fixture(scope="module")
def ref():
    """The PyTorch reference module (conftest.require_module: torch missing skips, or fails under CI=true)."""
    require_module("torch", "runs the official PyTorch CenterNet the conversion is checked against")
    from testkit import official_centernet_torch
    return official_centernet_torch


@pytest.fixture(scope="module")
def r18_model(ref):
    """A random official resdcn18 (80 classes) in eval mode."""
    return ref.randomize(ref.PoseResNetDCN(18, 80), seed=18)


@pytest.fixture(scope="module")
def r18_state(r18_model):
    """name -> numpy array of r18_model (num_batches_tracked included)."""
    return {k: v.numpy().copy() for k, v in r18_model.state_dict().items()}


def _input(shape=(2, 3, 96, 128), seed=5):
    import torch
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _convert_main(argv, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="convert_official_ckpt"):
        code = conv.main(argv)
    return code, caplog.text


def _no_output_left(folder, sources):
    """Nothing but the source files in ``folder``: no output, no temporary."""
    return sorted(os.listdir(folder)) == sorted(os.path.basename(s) for s in sources)


# ----------------------------------------------------------------------------- layouts


def test_offset_permutation_turns_dcnv2_pairs_into_mindspore_blocks():
    perm = conv.dcn_offset_permutation()
    assert perm.tolist() == [1, 3, 5, 7, 9, 11, 13, 15, 17, 0, 2, 4, 6, 8, 10, 12, 14, 16] + list(range(18, 27))
    official = np.zeros(27)
    official[0:18:2] = 100 + np.arange(9)  # dy of point k at channel 2k
    official[1:18:2] = 200 + np.arange(9)  # dx of point k at channel 2k + 1
    official[18:] = 300 + np.arange(9)     # mask logits
    ours = official[perm]
    assert ours[:9].tolist() == list(200 + np.arange(9))    # x offsets first (ops.deformable_conv2d)
    assert ours[9:18].tolist() == list(100 + np.arange(9))  # then y offsets
    assert ours[18:].tolist() == list(300 + np.arange(9))


def test_conv_transpose_weight_layout_is_the_same_as_torch(ref):
    """torch ConvTranspose2d (in, out, kh, kw) -> MindSpore Conv2dTranspose (in, out, kh, kw), no flip."""
    import torch
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((3, 5, 4, 4)).astype(np.float32)  # in != out, asymmetric kernel
    x = rng.standard_normal((1, 3, 6, 7)).astype(np.float32)
    up_torch = torch.nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1, output_padding=0, bias=False)
    with torch.no_grad():
        up_torch.weight.copy_(torch.from_numpy(weight))
        expected = up_torch(torch.from_numpy(x)).numpy()
    up = nn.Conv2dTranspose(3, 5, 4, stride=2, pad_mode="pad", padding=1, has_bias=False)
    assert tuple(up.weight.shape) == weight.shape
    up.weight.set_data(Tensor(weight))
    out = up(Tensor(x)).asnumpy()
    assert out.shape == expected.shape == (1, 5, 12, 14)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    up.weight.set_data(Tensor(np.ascontiguousarray(weight[:, :, ::-1, ::-1])))
    assert np.abs(up(Tensor(x)).asnumpy() - expected).max() > 0.1  # a flipped kernel would be wrong


def test_reference_dcn_follows_dcnv2_channel_order(ref):
    """The PyTorch reference: channel 2k moves point k down (dy), 2k+1 right (dx), bilinear in between."""
    import torch
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((1, 3, 7, 9), generator=gen)
    weight = torch.randn((4, 3, 3, 3), generator=gen)
    bias = torch.randn(4, generator=gen)
    mask = torch.full((1, 9, 7, 9), 0.5)

    def shifted_conv(pad):  # pad (left, right, top, bottom) of a plain conv without padding
        return 0.5 * F.conv2d(F.pad(x, pad), weight) + bias.reshape(1, -1, 1, 1)

    offset = torch.zeros((1, 18, 7, 9))
    offset[:, 0::2] = 1.0  # dy = +1 for every point: rows h + i
    torch.testing.assert_close(ref.modulated_deform_conv(x, offset, mask, weight, bias),
                               shifted_conv((1, 1, 0, 2)), atol=1e-5, rtol=1e-5)
    offset = torch.zeros((1, 18, 7, 9))
    offset[:, 1::2] = 1.0  # dx = +1: columns w + j
    torch.testing.assert_close(ref.modulated_deform_conv(x, offset, mask, weight, bias),
                               shifted_conv((0, 2, 1, 1)), atol=1e-5, rtol=1e-5)
    offset = torch.zeros((1, 18, 7, 9))
    offset[:, 0::2] = 0.5  # half a row: the mean of the two (zero outside the image)
    half = ref.modulated_deform_conv(x, offset, mask, weight, bias)
    torch.testing.assert_close(half, 0.5 * (shifted_conv((1, 1, 1, 1)) + shifted_conv((1, 1, 0, 2))),
                               atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- equivalence


def _save_official(torch, model, path, depth):
    """As CenterNet's save_model: {'epoch', 'state_dict'[, 'optimizer']}, two historical variants."""
    state = model.state_dict()
    if depth == 18:
        # an old-PyTorch-style file: DataParallel prefixes, no num_batches_tracked, optimizer
        # state, the legacy (non-zip) serialization
        state = {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        optimizer = torch.optim.Adam(model.parameters(), lr=1.25e-4)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()  # zero gradients: fills the Adam state, leaves the weights as they are
        torch.save({"epoch": 70, "state_dict": state, "optimizer": optimizer.state_dict()}, path,
                   _use_new_zipfile_serialization=False)
    else:
        torch.save({"epoch": 140, "state_dict": state}, path)


def _torch_flip_detections(ref, torch, model, image, K):
    """The official flip test: average the sigmoid heatmaps and sizes of the image and its mirror."""
    with torch.no_grad():
        out = model(torch.cat((image, torch.flip(image, (3,))), 0))
        hm = out["hm"].sigmoid()
        hm = (hm[0:1] + torch.flip(hm[1:2], (3,))) / 2
        wh = (out["wh"][0:1] + torch.flip(out["wh"][1:2], (3,))) / 2
        return ref.ctdet_decode(hm, wh, out["reg"][0:1], K=K).numpy()


def _assert_same_detections(ours, theirs, box_atol=2 * TOL, margin=1e-4):
    """Same boxes, scores and classes, robust to near-ties in the ranking.

    Below the K-th score (plus a margin far above the score differences) the two top-K lists
    may legitimately differ, so every detection above that line on either side must be found
    in the other list with the same class, score and box.
    """
    assert ours.shape == theirs.shape
    for mine, other in zip(ours, theirs):
        cutoff = max(mine[-1, 4], other[-1, 4]) + margin
        assert (other[:, 4] > cutoff).sum() >= len(other) // 2  # most of the list is compared
        for first, second in ((mine, other), (other, mine)):
            for det in first[first[:, 4] > cutoff]:
                same_class = second[second[:, 5] == det[5]]
                assert len(same_class), det
                closest = same_class[np.abs(same_class[:, :4] - det[:4]).max(axis=1).argmin()]
                np.testing.assert_allclose(closest[:4], det[:4], atol=box_atol)  # box
                np.testing.assert_allclose(closest[4], det[4], atol=2e-5)       # score


def _flatten_per_class(per_class, classes):
    """Per-class (n, 5) lists -> (1, K, 6) [x1, y1, x2, y2, score, class], highest score first."""
    rows = np.concatenate([np.concatenate([np.asarray(boxes, np.float64).reshape(-1, 5),
                                           np.full((len(boxes), 1), j, np.float64)], axis=1)
                           for j, boxes in zip(classes, per_class)])
    return rows[np.argsort(-rows[:, 4], kind="stable")][None]


@pytest.mark.parametrize("depth", [18, 101])
def test_converted_official_network_gives_the_same_heads_and_detections(ref, depth, tmp_path, caplog):
    import torch
    model = ref.randomize(ref.PoseResNetDCN(depth, 80), seed=depth)
    image = _input()
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in model(image).items()}
    offsets = model.dcn_offsets()
    assert min(float(o.std()) for o in offsets) > 0.15 and min(float(o.abs().max()) for o in offsets) > 0.5
    source, output = str(tmp_path / "ctdet_coco_resdcn.pth"), str(tmp_path / "centernet.ckpt")
    _save_official(torch, model, source, depth)

    code, log = _convert_main(["--source", source, "--output", output], caplog)
    assert code == 0, log
    flags = DEPTH_FLAGS[depth]
    for flag in flags + ["--dataset_config.num_classes=80"]:
        assert flag in log
    assert "converted %d tensors" % (151 if depth == 18 else 571) in log
    cfg = get_config(flags)
    net = CenterNetDet(cfg.net_config, cfg.dataset_config.num_classes)
    assert load_network_weights(net, output) == len(list(net.get_parameters()))  # nothing missing
    saved = ms.load_checkpoint(output)
    trainable = sum(int(np.prod(v.shape)) for k, v in saved.items()
                    if not k.endswith(("moving_mean", "moving_variance")))
    assert trainable == OFFICIAL_PARAMS[depth]

    net.set_train(False)
    outputs = net(Tensor(image.numpy()))
    diffs = {name: float(np.abs(out.asnumpy() - expected[name]).max())
             for name, out in zip(("hm", "wh", "reg"), outputs)}
    print("resdcn%d max abs difference per head: %s" % (depth, diffs))
    assert max(diffs.values()) <= TOL, diffs

    K = 40
    ours = DetectionDecode(K=K)(ms.ops.sigmoid(outputs[0]), outputs[1], outputs[2]).asnumpy()
    theirs = ref.ctdet_decode(torch.sigmoid(torch.from_numpy(expected["hm"])), torch.from_numpy(expected["wh"]),
                              torch.from_numpy(expected["reg"]), K=K).numpy()
    _assert_same_detections(ours, theirs)
    # back onto a 90x120 image tested at its own resolution padded to 96x128 (official keep_res:
    # centre (w // 2, h // 2), scale = the padded size), official single-scale protocol (no NMS)
    meta = {"c": np.array([60.0, 45.0], np.float32), "s": np.array([128.0, 96.0], np.float32),
            "out_height": 24, "out_width": 32}
    no_nms = SoftNMS.from_config(get_config(["--eval_config.SOFT_NMS=false"]).eval_config)
    per_class = post_process_image([(ours[0], meta, 1.0)], 80, no_nms, max_per_image=100)
    official = ref.ctdet_post_process(theirs[0], meta["c"], meta["s"], 24, 32, 80)
    _assert_same_detections(_flatten_per_class(per_class, range(80)),
                            _flatten_per_class([official[j + 1] for j in range(80)], range(80)),
                            box_atol=2 * TOL * 128 / 32)  # boxes in image pixels: 4x the output map
    if depth == 18:  # eval.py's cell, with the flip test
        flipped = CenterNetDetEval(net, K=K, flip_test=True)(Tensor(image[0:1].numpy())).asnumpy()
        _assert_same_detections(flipped, _torch_flip_detections(ref, torch, model, image[0:1], K))


def test_layout_mistakes_would_be_caught(ref, r18_model, r18_state):
    """The random network is sensitive to each layout the converter must get right."""
    import torch
    image = Tensor(_input().numpy())
    params, _ = conv.convert_state_dict(r18_state, num_classes=80)
    net = CenterNetDet(get_config(R18_FLAGS).net_config, 80)
    net.set_train(False)

    def hm_with(changes):
        values = dict(params, **changes)
        ms.load_param_into_net(net, {k: ms.Parameter(Tensor(v), name=k) for k, v in values.items()})
        return net(image)[0].asnumpy()

    with torch.no_grad():
        expected = r18_model(_input())["hm"].numpy()
    assert np.abs(hm_with({}) - expected).max() <= TOL
    offset_w, offset_b = "deconv_layers.0.conv_offset_mask.weight", "deconv_layers.0.conv_offset_mask.bias"
    swap = np.r_[9:18, 0:9, 18:27]
    mistakes = {
        "dx/dy swapped": {offset_w: params[offset_w][swap], offset_b: params[offset_b][swap]},
        "offsets not permuted": {offset_w: r18_state[offset_w], offset_b: r18_state[offset_b]},
        "up-conv kernel flipped": {"deconv_layers.3.weight":
                                   np.ascontiguousarray(params["deconv_layers.3.weight"][:, :, ::-1, ::-1])},
        "up-conv in/out swapped": {"deconv_layers.9.weight":
                                   np.ascontiguousarray(params["deconv_layers.9.weight"].transpose(1, 0, 2, 3))},
        "BN mean/var swapped": {"deconv_layers.13.moving_mean": params["deconv_layers.13.moving_variance"],
                                "deconv_layers.13.moving_variance": params["deconv_layers.13.moving_mean"] ** 2},
    }
    for what, change in mistakes.items():
        assert np.abs(hm_with(change) - expected).max() > 100 * TOL, what


def test_dcn_layer_matches_with_large_offsets(ref):
    """One converted DCN layer on its real input, with offsets of several pixels."""
    import torch
    model = ref.randomize(ref.PoseResNetDCN(18, 80), seed=7, offset_scale=2.0)
    captured = {}
    layer = model.deconv_layers[12]
    handle = layer.register_forward_hook(lambda m, inputs, output: captured.update(x=inputs[0], y=output))
    with torch.no_grad():
        model(_input())
    handle.remove()
    offsets = layer.last_offset
    assert float(offsets.std()) > 1.0 and float(offsets.abs().max()) > 4.0
    params, _ = conv.convert_state_dict(model.state_dict(), num_classes=80)
    ours = ModulatedDeformConv2d(128, 64)
    for name in ("weight", "bias", "conv_offset_mask.weight", "conv_offset_mask.bias"):
        ours.parameters_dict()[name].set_data(Tensor(params["deconv_layers.12." + name]))
    out = ours(Tensor(captured["x"].numpy())).asnumpy()
    assert np.abs(out - captured["y"].numpy()).max() <= TOL


def test_imagenet_backbone_conversion_from_the_command_line(ref, tmp_path):
    """torchvision-style file -> backbone checkpoint that train.py's loader accepts; fc.* dropped."""
    import torch
    model = ref.randomize(ref.ImageNetResNet(18), seed=3)
    source, output = str(tmp_path / "resnet18-imagenet.pth"), str(tmp_path / "resnet18_backbone.ckpt")
    torch.save(model.state_dict(), source)  # torchvision files are a bare state dict
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_official_ckpt.py"),
                             "--source", source, "--backbone_only", "--output", output],
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "dropped the ImageNet classifier: fc.weight, fc.bias" in result.stderr
    assert "skipped 20 BatchNorm num_batches_tracked" in result.stderr
    assert "--net_config.block_type=BasicBlock --net_config.block_class=[2,2,2,2]" in result.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["resnet18-imagenet.pth", "resnet18_backbone.ckpt"])

    net = CenterNetDet(get_config(R18_FLAGS).net_config, 80)
    backbone = [p.name for p in net.get_parameters() if p.name.startswith("backbone.")]
    assert load_network_weights(net, output) == len(backbone) == 100
    assert not any(name.startswith("fc.") for name in ms.load_checkpoint(output))
    net.set_train(False)
    image = _input((1, 3, 64, 96))
    with torch.no_grad():
        expected = model.features(image).numpy()
    assert np.abs(net.backbone(Tensor(image.numpy())).asnumpy() - expected).max() <= TOL


def test_head_variants_are_read_from_the_checkpoint(r18_state):
    state = dict(r18_state)
    rng = np.random.default_rng(0)
    state["wh.2.weight"] = rng.standard_normal((160, 64, 1, 1)).astype(np.float32)  # cat_spec_wh: 2 x 80
    state["wh.2.bias"] = np.zeros(160, np.float32)
    for key in [k for k in state if k.startswith("reg.")]:
        del state[key]
    params, summary = conv.convert_state_dict(state, num_classes=80)
    assert summary.arch.cat_spec_wh and not summary.arch.reg_offset
    flags = summary.flags(get_config([]).net_config)
    assert "--net_config.cat_spec_wh=true" in flags and "--net_config.reg_offset=false" in flags
    assert "--net_config.head_conv=64" not in flags  # the default
    conv.check_against_network(params, summary)  # our network built with these flags takes every tensor


# ----------------------------------------------------------------------------- bad input


def test_bad_files_are_refused_without_output(ref, tmp_path, caplog):
    import torch
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n")
    a_list = tmp_path / "list.pth"
    torch.save([1, 2, 3], str(a_list))
    dla = tmp_path / "ctdet_coco_dla_2x.pth"
    torch.save({"epoch": 230, "state_dict": {"base.base_layer.0.weight": torch.zeros(16, 3, 7, 7),
                                             "dla_up.ida_0.proj_1.conv.weight": torch.zeros(256, 512, 3, 3),
                                             "hm.0.weight": torch.zeros(256, 64, 3, 3)}}, str(dla))
    hourglass = tmp_path / "ctdet_coco_hg.pth"
    torch.save({"epoch": 50, "state_dict": {"module.pre.0.conv.weight": torch.zeros(128, 3, 7, 7),
                                            "module.kps.0.up1.0.conv1.weight": torch.zeros(256, 256, 3, 3)}},
               str(hourglass))
    missing = tmp_path / "missing.pth"
    sources = [garbage, text, a_list, dla, hourglass]
    output = str(tmp_path / "out.ckpt")
    for source, message in ((garbage, "cannot read"), (text, "cannot read"), (a_list, "not a model checkpoint"),
                            (dla, "key 'base.base_layer.0.weight': this looks like a DLA-34"),
                            (hourglass, "key 'pre.0.conv.weight': this looks like a Hourglass-104"),
                            (missing, "not found")):
        code, log = _convert_main(["--source", str(source), "--output", output], caplog)
        assert code == 1 and message in log, (source, log)
        assert _no_output_left(tmp_path, sources)


def test_class_count_must_match(r18_state, ref, tmp_path, caplog):
    import torch
    with pytest.raises(CheckpointError, match=r"key 'hm.2.weight': the checkpoint has 80 classes, but 20"):
        conv.convert_state_dict(r18_state, num_classes=20)
    state = dict(r18_state, **{"hm.2.weight": np.zeros((3, 64, 1, 1), np.float32),
                               "hm.2.bias": np.zeros(3, np.float32)})
    source = tmp_path / "ctdet_3classes.pth"
    torch.save({"epoch": 1, "state_dict": {k: torch.from_numpy(v) for k, v in state.items()}}, str(source))
    output = str(tmp_path / "out.ckpt")
    code, log = _convert_main(["--source", str(source), "--output", output], caplog)  # the config says 80
    assert code == 1 and "has 3 classes, but 80 are expected; pass --num_classes=3" in log
    code, log = _convert_main(["--source", str(source), "--output", output, "--num_classes", "5"], caplog)
    assert code == 1 and "has 3 classes, but 5" in log
    assert _no_output_left(tmp_path, [source])
    code, log = _convert_main(["--source", str(source), "--output", output, "--num_classes", "3"], caplog)
    assert code == 0 and "--dataset_config.num_classes=3" in log
    net = CenterNetDet(get_config(R18_FLAGS).net_config, 3)
    assert load_network_weights(net, output) == len(list(net.get_parameters()))


def _make_plain_up_path(state):
    """The official non-DCN ResNet (msra_resnet.py): deconv_layers.0 is a transposed conv."""
    state["deconv_layers.0.weight"] = np.zeros((512, 256, 4, 4), np.float32)
    for key in [k for k in state if k.startswith("deconv_layers.0.") and k != "deconv_layers.0.weight"]:
        del state[key]


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"deconv_layers.3.bias": np.zeros(256, np.float32)}),
     r"key 'deconv_layers.3.bias' \(256,\) is not mapped: the official up-convolutions have no bias"),
    (lambda s: s.update({"layer3.0.conv2.weight": np.zeros((256, 256, 1, 1), np.float32)}),
     r"key 'layer3.0.conv2.weight' has shape \(256, 256, 1, 1\), expected \(256, 256, 3, 3\)"),
    (lambda s: s.pop("deconv_layers.6.conv_offset_mask.bias"),
     r"key 'deconv_layers.6.conv_offset_mask.bias' is missing"),
    (lambda s: s.update({"hps.2.weight": np.zeros((34, 64, 1, 1), np.float32)}),
     r"key 'hps.2.weight' .* another CenterNet task"),
    (lambda s: s.update({"fc.weight": np.zeros((1000, 512), np.float32)}),
     r"key 'fc.weight' .* with --backbone_only"),
    (lambda s: s.update({"layer1.0.bn1.running_mean": np.zeros(64, np.int64)}),
     r"key 'layer1.0.bn1.running_mean' holds a ndarray, not a floating-point tensor"),
    (lambda s: _make_plain_up_path(s), r"plain transposed conv: this is the non-DCN ResNet"),
])
def test_unmapped_misshaped_and_missing_keys_name_the_key(r18_state, change, message):
    state = dict(r18_state)
    change(state)
    with pytest.raises(CheckpointError, match=message):
        conv.convert_state_dict(state, num_classes=80)


def test_backbone_only_and_detector_are_not_mixed_up(r18_state, ref):
    with pytest.raises(CheckpointError, match=r"key 'deconv_layers.0.weight' .* convert it without --backbone_only"):
        conv.convert_state_dict(r18_state, backbone_only=True)
    classifier = {k: v.numpy() for k, v in ref.ImageNetResNet(18).state_dict().items()}
    with pytest.raises(CheckpointError, match=r"key 'fc.weight': an ImageNet classifier .* --backbone_only"):
        conv.convert_state_dict(classifier)
    params, summary = conv.convert_state_dict(classifier, backbone_only=True)
    assert summary.dropped == ["fc.weight", "fc.bias"] and len(summary.skipped_num_batches_tracked) == 20
    assert all(k.startswith("backbone.") for k in params) and len(params) == 100
    with pytest.raises(CheckpointError, match="both 'conv1.weight' and its DataParallel form"):
        conv.convert_state_dict(dict(classifier, **{"module.conv1.weight": classifier["conv1.weight"]}),
                                backbone_only=True)


def test_existing_output_needs_overwrite(r18_state, ref, tmp_path, caplog):
    import torch
    source = tmp_path / "resnet18.pth"
    torch.save(ref.ImageNetResNet(18).state_dict(), str(source))
    output = tmp_path / "backbone.ckpt"
    output.write_bytes(b"old")
    code, log = _convert_main(["--source", str(source), "--output", str(output), "--backbone_only"], caplog)
    assert code == 1 and "exists; pass --overwrite" in log and output.read_bytes() == b"old"
    code, log = _convert_main(["--source", str(source), "--output", str(output), "--backbone_only", "--overwrite"],
                              caplog)
    assert code == 0 and len(ms.load_checkpoint(str(output))) == 100
    assert sorted(os.listdir(tmp_path)) == ["backbone.ckpt", "resnet18.pth"]  # no temporary left


def test_pickled_python_objects_need_trust_pickle(r18_state, ref, tmp_path, caplog):
    import torch
    source = tmp_path / "with_options.pth"
    state = {k: torch.from_numpy(v) for k, v in r18_state.items()}
    torch.save({"epoch": 3, "state_dict": state, "opt": argparse.Namespace(arch="resdcn_18")}, str(source))
    output = str(tmp_path / "out.ckpt")
    code, log = _convert_main(["--source", str(source), "--output", output], caplog)
    assert code == 1 and "weights_only=True" in log and "--trust_pickle" in log
    assert _no_output_left(tmp_path, [source])
    code, log = _convert_main(["--source", str(source), "--output", output, "--trust_pickle"], caplog)
    assert code == 0 and "unpickling in full because --trust_pickle was given" in log


def test_missing_torch_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(CheckpointError, match=r"needs PyTorch, which is not installed: install it with "
                                              r"`pip install torch`"):
        conv.read_pth(str(tmp_path / "x.pth"))


def test_output_name_must_end_with_ckpt():
    with pytest.raises(SystemExit):
        conv.parse_args(["--source", "a.pth", "--output", "model.bin"])
