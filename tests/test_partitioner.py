"""murmur2 equals Kafka's Utils.murmur2 (vectors from Kafka's own tests and clients)."""

from __future__ import annotations

import pytest

from eventml.log import murmur2, partition_for

# (key, Java Utils.murmur2(key)) as published with Kafka clients' partitioner tests
VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
    (b"", 275646681),
]


@pytest.mark.parametrize(("key", "expected"), VECTORS)
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_is_positive_hash_mod_partitions() -> None:
    for key, h in VECTORS:
        assert partition_for(key, 7) == (h & 0x7FFFFFFF) % 7


def test_keys_spread_over_partitions() -> None:
    counts = [0] * 8
    for i in range(8000):
        counts[partition_for(b"card-%d" % i, 8)] += 1
    assert min(counts) > 800, counts
