"""Command generator for rank-table (HCCL) distributed training on Ascend; see README.md."""
