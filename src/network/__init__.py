"""The parts the networks of src/centernet_det.py and src/decode.py are built from: the modulated
deformable convolution (DCNv2), the losses, the gather of head maps at object positions, and
BatchNorm folding for inference and export."""
