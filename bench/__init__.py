"""Benchmarks: bench/run_all.py runs every script here and writes docs/PERFORMANCE.md."""
