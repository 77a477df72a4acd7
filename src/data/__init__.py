"""Data: COCO facts and the one COCO json reader, the converted MindRecord layout, the training
pipeline (sample order, augmentation, target maps) and the ordered background prefetcher.
The converter command is the seed's src/dataset.py."""
