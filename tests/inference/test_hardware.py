"""The processor checks: the container's CPU limit caps threads; bf16 is native only with its instructions."""

import pytest

from textclf.inference import hardware


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"cpu.max": "200000 100000\n"}, 2),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_the_container_cpu_limit_is_read_from_cgroup_v2_or_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert hardware.cgroup_cpus(tmp_path) == expected


def test_threads_are_the_affinity_capped_by_the_limit(monkeypatch):
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(32)))
    monkeypatch.setattr(hardware, "cgroup_cpus", lambda: 2)
    assert hardware.cpu_threads() == 2 and hardware.cpu_threads(5) == 5
    monkeypatch.setattr(hardware, "cgroup_cpus", lambda: None)
    assert hardware.cpu_threads() == 32


@pytest.mark.parametrize(
    "flags, native",
    [({"avx2"}, False), ({"avx2", "avx512f"}, False), ({"avx512f", "avx512_bf16"}, True), ({"amx_bf16"}, True)],
)
def test_native_bf16_needs_its_instructions_not_just_avx512(monkeypatch, flags, native):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    assert hardware.native_bf16("cpu") is native
    assert set(hardware.speed_features()) <= flags
