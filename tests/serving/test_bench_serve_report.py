"""bench/serve.py's table: each server's rate as a share of its own backend's in-process limit."""

from __future__ import annotations

from bench.loadgen import LoadResult
from bench.serve import DEFAULT, Row, table


def load(completed: int, seconds: float) -> LoadResult:
    return LoadResult(concurrency=16, completed=completed, errors=0, seconds=seconds, latencies=[0.1], answers={})


def own_share(row: Row, limits: dict[str, dict]) -> str:
    header, _, line = table([row], 16, limits).splitlines()
    return dict(zip(header.split("|"), line.split("|")))[" % of own in-process "].strip()


def test_the_default_is_compared_with_the_backend_it_resolved_to_when_auto_was_not_run_in_process():
    limits = {
        "onnx": {"backend": "onnx", "reviews_per_s": 20.0},
        "torch fp32": {"backend": "torch", "reviews_per_s": 10.0},
    }
    row = Row("serving auto (default)", load(10, 1), load(18, 1), 400, 90, note="backend onnx", backend=DEFAULT)
    assert own_share(row, limits) == "90"


def test_a_named_backend_is_compared_with_its_own_limit_and_an_unmeasured_one_is_left_blank():
    limits = {"onnx": {"backend": "onnx", "reviews_per_s": 20.0}}
    assert own_share(Row("serving onnx", load(1, 1), load(15, 1), 400, 90, "backend onnx", "onnx"), limits) == "75"
    assert (
        own_share(Row("serving onnx-int8", load(1, 1), load(15, 1), 400, 90, "backend onnx-int8", "onnx-int8"), limits)
        == ""
    )
