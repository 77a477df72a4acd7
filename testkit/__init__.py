"""What the tests, the benchmarks and the tools share outside the product: the official PyTorch
CenterNet network (the reference of the equivalence tests and of bench_vs_torch), the small
network's settings and the launch/process doubles of the distributed tests."""
