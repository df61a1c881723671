"""Helpers shared by the tests and the benchmarks: real Kafka clients, worker
subprocesses, free ports, podman and the raw records a producer publishes.

They live here, not in a test module, so no test imports another test's module
and the benchmarks need no pytest fixture file.
"""
