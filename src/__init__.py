"""CenterNet-ResNet-DCN on MindSpore: the map of ``src``.

The original model zoo's modules are here, at their paths and with their roles (README,
"Script and Sample Code"); what was added beyond them lives in sub-packages that they import.

    model_utils/      configuration, device and ModelArts adapters, entry-script plumbing, atomic file output
    centernet_det.py  the networks: detector, loss cell, training step (applies the loss scale it is given)
    resnet101.py      ResNet backbone
    dataset.py        the data entry: COCO -> MindRecord converter (a command) and the converted dataset
    decode.py         in-graph decode of the heads, eval network with flip test
    image.py          image pre-processing: affine transforms, gaussian targets, augmentation
    post_process.py   after decode: back to image coordinates, multi-scale merge, top-100
    utils.py          training auxiliaries: optimizer groups, checkpoints (save, load, EMA or raw weights)
    visual.py         drawing ground truth and detections

    network/  the parts the networks are built from: deformable convolution, losses, head gather, BN folding
    data/     COCO facts and reader, the MindRecord layout, the training pipeline and its targets, prefetch
    train/    the training loop, mixed precision and loss scaling, EMA, lr schedule, distributed helpers, log
    infer/    inference and evaluation: the checkpoint's Detector, the detection loop, COCO evaluation,
              soft-NMS, detecting a folder of photos
    deploy/   exported models: the ONNX writer and its decode, the runtimes that run MINDIR and ONNX
              behind one interface, the Ascend 310 chain's shared files

Layers: model_utils imports nothing of the project; network and data import only seed modules
that import neither back (resnet101, image); train, infer and deploy import the seed modules and
the packages below them (infer -> deploy -> data, network). The seed modules import the
packages, never the other way round in a cycle (tests/test_layers.py checks it).
"""
