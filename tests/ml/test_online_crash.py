"""kill -9 an online learner mid-stream, restart it: nothing learned twice, nothing lost.

A worker process (forked from the test) runs the label join and the learner on the
embedded log, over predictions and labels written up front. It is SIGKILLed several
times: right after the learner learned a micro-batch but before that batch committed (the
worker announces each learned batch on a pipe and pauses at the chosen one, so the kill
lands there every time), and once at a random moment. A last run finishes the stream. Then :func:`check_learning` compares the
committed checkpoint with the data: the count equals the distinct labelled events, the
digest is that of the learner's examples in order, and the model predicts exactly as one
trained once, in order, on them.

The same check run against a deliberately broken setup (``unsafe_commit_first``: input
offsets committed before the batch's model checkpoint) must fail: the batch killed
in flight is never learned.
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from eventml.engine import App, Worker
from eventml.log import open_log
from eventml.ml.online import OnlineLearner, label_join, learn_online, read_checkpoint
from tests.ml.test_online import check_learning, new_model, scenario


def _worker(url: str, names: tuple[str, str, str], out: int, pause_at: int, unsafe: bool) -> None:
    """The worker process: runs the app until idle; after each learned batch writes
    "learned N" to ``out``; at its ``pause_at``-th learned batch it sleeps before that batch
    commits (the parent kills it there)."""
    app, learner = build_app(url, names, unsafe=unsafe)
    batches: list[int] = []

    def announce(summary: dict[str, Any]) -> dict[str, Any]:
        batches.append(summary["learned"])
        os.write(out, b"learned %d\n" % summary["learned"])
        if len(batches) == pause_at:
            time.sleep(60)  # learned, not committed: killed here
        return summary

    learner.stream.map(announce)
    Worker(app).run(idle_timeout_s=0.5)


def build_app(url: str, names: tuple[str, str, str], *, unsafe: bool = False) -> tuple[App, OnlineLearner]:
    app_name, preds, labels = names
    app = App(app_name, broker=url, max_batch=25, min_batch=5, unsafe_commit_first=unsafe)
    app.topic(preds, partitions=2)
    app.topic(labels, partitions=2)
    join = label_join(app, preds, labels)
    return app, learn_online(app, join, model="fraud", initial=new_model())


def _run(url: str, names: tuple[str, str, str], *, kill_at: int | None,
         delay_s: float | None = None, unsafe: bool = False) -> list[int]:
    """One worker process (forked: it starts in milliseconds, River already imported);
    SIGKILL it at its ``kill_at``-th learned batch (paused there, before the commit), or
    ``delay_s`` after its first one. Returns the counts it announced."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            _worker(url, names, write_end, kill_at or 0, unsafe)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_end)
    announced: list[int] = []
    killing = kill_at is not None or delay_s is not None
    with os.fdopen(read_end, "rb") as lines:
        try:
            for line in lines:
                announced.append(int(line.split()[1]))
                if len(announced) == kill_at:
                    break
                if delay_s is not None:
                    time.sleep(delay_s)
                    break
        finally:
            if killing:
                os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
    if killing:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "ended before the kill"
    else:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the last run failed"
    return announced


def _crash_and_finish(tmp_path: Path, *, unsafe: bool) -> list[str]:
    url = f"embedded://{tmp_path}/data?durability=fast"
    names = (f"crash{uuid.uuid4().hex[:6]}", "predictions", "labels")
    app, learner = build_app(url, names, unsafe=unsafe)
    s = scenario(300, seed=11)
    log = open_log(url)
    Worker(app, log=log).close()  # creates the topics
    log.append(names[1], s.predictions)
    log.append(names[2], s.labels)
    log.close()

    first = _run(url, names, kill_at=3, unsafe=unsafe)  # mid-batch, 3rd batch
    log = open_log(url)
    cp = read_checkpoint(log, learner)
    log.close()
    assert cp is not None and cp.learned == first[1] < first[2] < len(s.learnable)  # killed mid-stream
    if not unsafe:
        _run(url, names, kill_at=1)  # the first batch after a restart
        _run(url, names, kill_at=None, delay_s=random.Random(5).uniform(0.02, 0.2))  # anywhere
    _run(url, names, kill_at=None)  # to the end of the stream
    log = open_log(url)
    try:
        return check_learning(log, learner, s.learnable)
    finally:
        log.close()


def test_sigkill_mid_stream_neither_loses_nor_repeats_learning(tmp_path: Path) -> None:
    assert _crash_and_finish(tmp_path, unsafe=False) == []


def test_the_check_catches_offsets_committed_before_the_model(tmp_path: Path) -> None:
    problems = _crash_and_finish(tmp_path, unsafe=True)
    assert any(p.startswith("learned ") for p in problems), problems
