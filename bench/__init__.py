"""Benchmarks, run as modules from the repo root (``python -m bench.bench_bus``), so this
checkout's ``hitl_bus`` and ``bench.common`` are found without any path set-up."""
