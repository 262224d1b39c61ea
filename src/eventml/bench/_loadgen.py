"""The HTTP benchmarks' shared pieces: ``eventml serve`` in its own process, and a
raw-socket load generator (in another process) that replays prebuilt requests.

:func:`drive` sends each request at a fixed **open-loop** rate (request *i* is due at
``start + i / rate`` whatever happened to earlier ones; its latency runs from that due
time to the last byte of the response, so a stall counts against every request due
meanwhile: no coordinated omission), or, with ``rate=None``, **closed loop**: every
connection sends the next request as soon as its last answer arrived, and latency is
each request's own service time. Requests go over ``connections`` keep-alive HTTP/1.1
connections (``TCP_NODELAY``; a request due while every connection is busy waits, and
in open loop the wait counts). (wrk from Debian is closed-loop and cannot hold a fixed
rate; wrk2 is not packaged: hence this small generator.)
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eventml.bench._timing import BenchmarkError

_START_TIMEOUT_S = 60.0


def percentiles_ms(values_ms: Any) -> dict[str, float | None]:
    """p50/p90/p99/p99.9/max of ``values_ms`` (milliseconds, 3 decimals; None if empty)."""
    values = np.asarray(values_ms, dtype=float)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(values, q)), 3) if len(values) else None

    return {"p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "p999_ms": pct(99.9),
            "max_ms": round(float(values.max()), 3) if len(values) else None}


class Server:
    """``eventml serve ARGS --port 0`` in its own process, answering on ``ready_path``."""

    def __init__(self, workdir: str, args: Sequence[str], *, ready_path: str = "/healthz") -> None:
        self.workdir, self.args, self.ready_path = workdir, list(args), ready_path
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if k not in ("EVENTML_BROKER", "EVENTML_KEYS")}
        self.stderr = open(Path(self.workdir) / "server.log", "w+")  # closed in __exit__
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eventml", "serve", *self.args, "--port", "0"],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, cwd=self.workdir, env=env)
        try:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if " at http://" not in line:
                raise BenchmarkError(f"eventml serve did not start: {self._stderr_tail()}")
            base = line.split(" at ", 1)[1].split()[0]
            host, _, port = base.removeprefix("http://").rpartition(":")
            self.host, self.port = host.strip("[]"), int(port)
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        lines = self.stderr.read().strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        request = f"GET {self.ready_path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode()
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as s:
                    s.sendall(request)
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"eventml serve did not answer: {self._stderr_tail()}")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        """The server process's user + system CPU seconds so far (Linux; 0 elsewhere)."""
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float | None:
        """The server process's resident memory (Linux; None elsewhere)."""
        assert self.proc is not None
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
        return None if kb is None else round(kb / 1024, 1)

    def drive(self, requests: Sequence[bytes], *, rate: float | None, warmup_s: float = 0.0,
              duration_s: float = 0.0, connections: int, ok_status: int = 200,
              count: bytes | None = None, limit_s: float = 600.0) -> dict[str, Any]:
        """Run the load generator (its own process) with ``requests``: :func:`drive`'s
        summary, plus the server's CPU per request and its RSS before and after."""
        blob = Path(self.workdir) / "load.bin"
        blob.write_bytes(b"".join(requests))
        spec = Path(self.workdir) / "load.json"
        spec.write_text(json.dumps({
            "host": self.host, "port": self.port, "requests_file": str(blob),
            "lengths": [len(r) for r in requests], "rate": rate, "warmup_s": warmup_s,
            "duration_s": duration_s, "connections": connections, "ok_status": ok_status,
            "count": None if count is None else count.decode()}))
        cpu0, rss0, gen0 = self.cpu_s(), self.rss_mb(), _children_cpu_s()
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from eventml.bench._loadgen import main; main(sys.argv[1])",
             str(spec)], capture_output=True, text=True, timeout=limit_s)
        cpu, gen = self.cpu_s() - cpu0, _children_cpu_s() - gen0
        if done.returncode != 0:
            raise BenchmarkError(f"the load generator failed: {done.stderr.strip().splitlines()[-1:]}")
        out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        sent = out.pop("sent_total")
        out["server_cpu_us_per_request"] = round(cpu / sent * 1e6, 1) if sent else None
        out["loadgen_cpu_us_per_request"] = round(gen / sent * 1e6, 1) if sent else None
        out["server_rss_mb"] = [rss0, self.rss_mb()]  # before and after the phase
        return out

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
        self.stderr.close()


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's children that ended (the load generator)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the load generator (its own process) ------------------------------------------------------


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    blob = Path(spec.pop("requests_file")).read_bytes()
    requests, at = [], 0
    for n in spec.pop("lengths"):
        requests.append(blob[at:at + n])
        at += n
    count = spec.pop("count")
    print(json.dumps(drive(requests=requests, count=None if count is None else count.encode(), **spec)))


def drive(
    *, host: str, port: int, requests: Sequence[bytes], rate: float | None, warmup_s: float = 0.0,
    duration_s: float = 0.0, connections: int, ok_status: int = 200, count: bytes | None = None,
    timeout_s: float = 5.0,
) -> dict[str, Any]:
    """Send ``requests`` (whole HTTP/1.1 requests), open loop at ``rate`` for ``warmup_s +
    duration_s`` seconds, or closed loop (``rate=None``: all of them, as fast as the server
    answers); see the module's docstring. Counted are the requests due after ``warmup_s``
    (open loop) or all (closed loop); ``ok_total`` and ``acknowledged`` (occurrences of
    ``count`` in ``ok_status`` answers) cover every request, warm-up included."""
    closed = rate is None
    total = len(requests) if rate is None else min(len(requests), int(rate * (warmup_s + duration_s)))
    interval = 0.0 if rate is None else 1.0 / rate
    if closed:
        warmup_s = 0.0
    sched = np.empty(total)
    sent = np.zeros(total)
    done = np.zeros(total)
    status = np.zeros(total, dtype=np.int32)  # 0: no answer (error)
    acknowledged = 0
    sel = selectors.SelectSelector()  # select(): µs timeouts (epoll's are whole ms)
    inflight: dict[socket.socket, tuple[int, bytearray]] = {}
    idle: deque[socket.socket] = deque()

    def connect() -> socket.socket:
        s = socket.create_connection((host, port), timeout=timeout_s)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        return s

    def drop(s: socket.socket) -> None:
        sel.unregister(s)
        s.close()
        inflight.pop(s, None)
        idle.append(connect())

    def send(s: socket.socket, request: bytes) -> None:
        n = s.send(request)
        if n < len(request):  # a large body filled the socket buffer: finish it blocking
            s.settimeout(timeout_s)
            try:
                s.sendall(memoryview(request)[n:])
            finally:
                s.setblocking(False)

    for _ in range(connections):
        idle.append(connect())
    pending: deque[int] = deque()
    start = time.perf_counter() + 0.05
    for i in range(total):
        sched[i] = start + i * interval
    nxt = finished = max_busy = 0
    clock = time.perf_counter
    while finished < total:
        now = clock()
        while nxt < total and sched[nxt] <= now:
            pending.append(nxt)
            nxt += 1
        while pending and idle:
            i = pending.popleft()
            s = idle.popleft()
            try:
                send(s, requests[i])
            except OSError:
                finished += 1  # status 0: an error
                drop(s)
                continue
            sent[i] = clock()
            inflight[s] = (i, bytearray())
        max_busy = max(max_busy, len(inflight))
        wait = max(0.0, sched[nxt] - clock()) if nxt < total else 0.05
        for key, _ in sel.select(wait if not pending or idle else min(wait, 0.05)):
            s = key.fileobj  # type: ignore[assignment]
            assert isinstance(s, socket.socket)
            try:
                data = s.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            entry = inflight.get(s)
            if entry is None:  # an idle connection closed by the server
                if not data:
                    idle.remove(s)
                    drop(s)
                continue
            i, buf = entry
            if not data:
                finished += 1
                drop(s)
                continue
            buf += data
            code = complete(buf)
            if code is not None:
                done[i] = clock()
                status[i] = code
                if code == ok_status and count is not None:
                    acknowledged += buf.count(count)
                finished += 1
                del inflight[s]
                idle.append(s)
        now = clock()
        for s, (i, _) in list(inflight.items()):
            if now - sent[i] > timeout_s:
                finished += 1
                drop(s)
    for s in [*idle, *inflight]:
        s.close()
    counted = sched >= start + warmup_s
    lat_ms = (done[counted] - (sent if closed else sched)[counted]) * 1000
    ok = status[counted] == ok_status
    ok_lat = lat_ms[ok]
    window_end = float(done[counted].max()) if counted.any() else start
    window_s = max(window_end - (start + warmup_s), 1e-9)
    lag_ms = (sent[counted] - sched[counted]) * 1000
    service_ms = (done[counted] - sent[counted])[ok] * 1000
    return {
        "requests": int(counted.sum()),
        "ok": int(ok.sum()),
        "errors": int((~ok).sum()),
        "achieved_rate": round(float(ok.sum()) / window_s, 1),
        "elapsed_s": round(window_s, 3),
        **percentiles_ms(ok_lat),
        "service_p99_ms": round(float(np.percentile(service_ms, 99)), 3) if len(service_ms) else None,
        "send_lag_p99_ms": None if closed or not len(lag_ms) else round(float(np.percentile(lag_ms, 99)), 3),
        "max_in_flight": max_busy,
        "worst": [[round(float(t), 3), round(float(v), 3)] for t, v in sorted(
            zip(sched[counted] - start, lat_ms, strict=True), key=lambda p: -p[1])[:5]],
        "ok_total": int((status == ok_status).sum()),
        "acknowledged": acknowledged if count is not None else None,
        "sent_total": total,
    }


def complete(buf: bytearray) -> int | None:
    """The status code once ``buf`` holds a whole response (``Content-Length`` framed)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).split(b"\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if len(buf) < end + 4 + length:
        return None
    return int(head[0].split()[1])
