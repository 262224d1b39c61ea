"""``python -m eventml.testing.kafka start|stop|status|jars`` (wrapped by ``scripts/kafka``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eventml.testing.kafka._common import (
    DATA_DIR_PREFIX,
    KAFKA_VERSION,
    START_TIMEOUT_S,
    KafkaUnavailable,
    _file_lock,
    default_home,
)
from eventml.testing.kafka.broker import (
    KafkaBroker,
    _pid_is_broker,
    _port_answers,
    _terminate_pid,
)
from eventml.testing.kafka.jars import _jars_complete, ensure_jars


def _state_path(home: Path) -> Path:
    return home / "run" / "state.json"


def _read_state(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_state_path(home).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _state_alive(state: dict[str, Any]) -> bool:
    try:
        pid, port = int(state["pid"]), int(state["port"])
    except (KeyError, TypeError, ValueError):
        return False
    return _pid_is_broker(pid) and _port_answers(port)


def _clear_state(home: Path, state: dict[str, Any] | None) -> None:
    if state is not None:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            _terminate_pid(int(state["pid"]))
        data_dir = state.get("data_dir")
        if isinstance(data_dir, str) and Path(data_dir).name.startswith(DATA_DIR_PREFIX):
            shutil.rmtree(data_dir, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        _state_path(home).unlink()


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _cmd_start(home: Path, timeout: float) -> int:
    with _file_lock(home / "run" / ".lock"):
        state = _read_state(home)
        if state is not None and _state_alive(state):
            _say(f"Kafka broker already running (pid {state['pid']})")
            print(state["bootstrap"], flush=True)
            return 0
        if state is not None:
            _say("removing stale Kafka broker state")
            _clear_state(home, state)
        if not _jars_complete(home / "lib", KAFKA_VERSION):
            t0 = time.monotonic()
            _say(f"fetching Kafka {KAFKA_VERSION} jars into {home / 'lib'} (once; cached)")
            ensure_jars(home)
            _say(f"jars ready in {time.monotonic() - t0:.1f} s")
        _say(f"starting Kafka {KAFKA_VERSION} broker")
        t1 = time.monotonic()
        broker = KafkaBroker(home, start_timeout=timeout, detached=True, progress=_say)
        broker.start()
        state = broker.detach()
        path = _state_path(home)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(path)
        _say(
            f"Kafka broker started in {time.monotonic() - t1:.1f} s "
            f"(pid {state['pid']}, log {state['log']}); stop it with scripts/kafka stop"
        )
        print(state["bootstrap"], flush=True)
        return 0


def _cmd_stop(home: Path) -> int:
    with _file_lock(home / "run" / ".lock"):
        state = _read_state(home)
        if state is None:
            _say("no Kafka broker recorded; nothing to stop")
            return 0
        _say(f"stopping Kafka broker pid {state.get('pid')} ({state.get('bootstrap')})")
        _clear_state(home, state)
        _say("stopped")
        return 0


def _cmd_status(home: Path) -> int:
    state = _read_state(home)
    if state is not None and _state_alive(state):
        print(state["bootstrap"])
        return 0
    print("not running")
    return 1


def _cmd_jars(home: Path) -> int:
    t0 = time.monotonic()
    lib = ensure_jars(home)
    _say(f"Kafka {KAFKA_VERSION} jars ready in {time.monotonic() - t0:.1f} s")
    print(lib)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/kafka",
        description="Run a throwaway single-node Kafka broker on 127.0.0.1 for development.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="cache/state dir (default: $EVENTML_KAFKA_HOME, <repo>/.kafka or ~/.cache/eventml/kafka)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a detached broker (idempotent); prints host:port")
    p_start.add_argument(
        "--timeout", type=float, default=START_TIMEOUT_S, help="readiness budget, s"
    )
    sub.add_parser("stop", help="stop the broker started by 'start'")
    sub.add_parser("status", help="print the address, or 'not running' (exit 1)")
    sub.add_parser("jars", help="only fetch the broker jars")
    args = parser.parse_args(argv)
    home: Path = (args.home or default_home()).resolve()
    try:
        if args.command == "start":
            return _cmd_start(home, float(args.timeout))
        if args.command == "stop":
            return _cmd_stop(home)
        if args.command == "status":
            return _cmd_status(home)
        return _cmd_jars(home)
    except KafkaUnavailable as exc:
        _say(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
