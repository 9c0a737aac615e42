"""The model's probe texts: a seeded sample that depends on the texts and the seed only."""

import random

from textclf.probe import read_probe_texts, sample_probe_texts, write_probe_texts


def rows(count: int) -> list[tuple[str, str]]:
    return [(f"text number {i}", "even" if i % 2 == 0 else "odd") for i in range(count)]


def test_sample_is_a_function_of_texts_and_seed_not_order():
    data = rows(1000)
    shuffled = random.Random(0).sample(data, len(data))
    first = sample_probe_texts(data, seed=7, size=50)
    assert first == sample_probe_texts(shuffled, seed=7, size=50)
    assert first != sample_probe_texts(data, seed=8, size=50)
    assert len(first) == 50 and len({row["text"] for row in first}) == 50
    assert all(row["label"] == ("even" if int(row["text"].split()[-1]) % 2 == 0 else "odd") for row in first)


def test_smaller_sample_is_the_start_of_a_larger_one_and_duplicates_count_once():
    data = rows(300) + rows(300)
    assert sample_probe_texts(data, seed=1, size=20) == sample_probe_texts(data, seed=1, size=40)[:20]
    assert len(sample_probe_texts(data, seed=1, size=500)) == 300


def test_round_trip_and_missing_file(tmp_path):
    probes = sample_probe_texts([("Ça va ? 👍", "question"), ("line\nbreak", "other")], seed=0)
    write_probe_texts(tmp_path, probes)
    assert read_probe_texts(tmp_path) == probes
    assert read_probe_texts(tmp_path / "absent") == []
