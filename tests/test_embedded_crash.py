"""kill -9 in the middle of appends: acknowledged batches are whole, no batch is ever partial."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import Any

from eventml.log import TopicPartition
from eventml.log.embedded import EmbeddedLog

BATCH = 500
KILLS = 60

# Appends batches of BATCH keyed records forever; after each append returns it
# writes one JSON line (batch id, offset range per partition) to stdout, unbuffered.
_APPENDER = textwrap.dedent(
    """
    import json, os, sys
    from eventml.log import Message, TopicSpec, open_log

    data, first_batch, durability = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    log = open_log(f"embedded://{data}?durability={durability}")
    log.create_topic(TopicSpec("crash", 4), exist_ok=True)
    pad = b"." * 180
    os.write(1, b"ready\\n")
    batch = first_batch
    while True:
        messages = [
            Message(b"%d:%d:" % (batch, i) + pad, key=b"k%d" % (i % 53)) for i in range(BATCH)
        ]
        ranges = {}
        for m in log.append("crash", messages):
            lo, hi = ranges.get(m.partition, (m.offset, m.offset))
            ranges[m.partition] = (min(lo, m.offset), max(hi, m.offset))
        os.write(1, json.dumps({"batch": batch, "ranges": ranges}).encode() + b"\\n")
        batch += 1
    """
).replace("BATCH", str(BATCH))


def _run_and_kill(
    data: Path, first_batch: int, durability: str, delay_s: float
) -> list[dict[str, Any]]:
    """Start an appender, kill -9 it ``delay_s`` after it is ready; its acknowledgements."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(data), str(first_batch), durability],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(delay_s)
    finally:
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    acks = []
    for line in out.split(b"\n"):
        with suppress(ValueError):  # the last line may be cut short: not an acknowledgement
            acks.append(json.loads(line))
    return acks


def test_kill_9_mid_append_never_loses_an_acknowledged_batch_nor_leaves_half_of_one(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    rng = random.Random(20240601)
    acked: dict[int, dict[str, list[int]]] = {}
    for run in range(KILLS):
        durability = "fsync" if run % 2 == 0 else "fast"
        # mostly kills within the first few batches (some mid-transaction), some later
        delay = rng.choice([0.0, rng.uniform(0, 0.01), rng.uniform(0, 0.05), rng.uniform(0, 0.15)])
        for ack in _run_and_kill(data, run * 1_000_000, durability, delay):
            acked[ack["batch"]] = ack["ranges"]

    assert len(acked) >= KILLS  # the appender got work done between kills

    conn = sqlite3.connect(data / "log.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()

    log = EmbeddedLog(data)
    per_batch: Counter[int] = Counter()
    where: dict[tuple[int, int], tuple[int, int]] = {}  # (partition, offset) -> (batch, index)
    ends = log.end_offsets("crash")
    for p, end in ends.items():
        offset = 0
        while batch := log.read(TopicPartition("crash", p), offset, 5000):
            for r in batch:
                assert r.value is not None
                batch_id, index, _ = r.value.split(b":", 2)
                per_batch[int(batch_id)] += 1
                where[(p, r.offset)] = (int(batch_id), int(index))
            # offsets are dense: nothing lost in the middle, nothing reused
            assert [r.offset for r in batch] == list(range(offset, offset + len(batch)))
            offset = batch[-1].offset + 1
        assert offset == end  # the persisted next offset matches the records

    assert set(per_batch.values()) <= {BATCH}, "a batch is partially present"
    missing = [b for b in acked if per_batch[b] != BATCH]
    assert not missing, f"acknowledged batches lost: {missing[:5]}"
    for acked_id, ranges in acked.items():  # acknowledged offsets hold that batch's records
        for part, (lo, hi) in ranges.items():
            assert {where[(int(part), o)][0] for o in range(lo, hi + 1)} == {acked_id}
    assert sum(per_batch.values()) == sum(ends.values())
    unacked = len(set(per_batch) - set(acked))  # committed, killed before it could say so
    print(f"{len(acked)} acknowledged batches, {unacked} committed but unacknowledged")
    log.close()
