"""Inference and evaluation with a checkpoint: the eval network and its Detector, the per-image
detection loop, COCO evaluation, soft-NMS (numpy and compiled) and detecting a folder of photos.
eval.py and tools/detect_images.py are their entries."""
