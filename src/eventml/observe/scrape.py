"""The workers' own metrics, scraped from their endpoints (``eventml run --metrics-port``).

:class:`WorkerScraper` reads each worker's ``/metrics`` (the text exposition format, with a
short timeout, the endpoints at once from a small thread pool; it blocks, so it runs in the
dashboard sampler's thread, never on an event loop) and keeps from each the histograms the
dashboard shows: batch time (``eventml_worker_batch_seconds``, from the poll's return to the
commit's end: the processing latency) and model call time
(``eventml_model_latency_seconds``, per model and version), plus ``eventml_worker_info``
(which app and worker answers there).

Each :meth:`~WorkerScraper.scrape` turns every worker's cumulative bucket counts into
*deltas* since that worker's previous answer (counts that went down mean the worker
restarted: its counts since then are the delta, as Prometheus' ``rate`` reads a counter
reset; a worker's first answer only sets the baseline), sums the deltas over the workers and
estimates percentiles from the summed buckets with
:func:`~eventml.observe.series.histogram_quantile` (linear interpolation within a bucket,
as Prometheus' ``histogram_quantile``). Processing latency is per scrape interval; model
latency over the last ``window`` scrapes (model calls are fewer). A worker that does not
answer (or answers something unreadable) is reported down, with why, and adds nothing.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from eventml.observe.series import histogram_quantile

__all__ = [
    "MODEL_LATENCY",
    "PROCESSING",
    "WorkerScraper",
    "histogram_delta",
    "metrics_url",
    "parse_metrics",
    "sum_histograms",
]

PROCESSING = "eventml_worker_batch_seconds"
MODEL_LATENCY = "eventml_model_latency_seconds"
INFO = "eventml_worker_info"
MAX_BYTES = 8 << 20

Labels = tuple[tuple[str, str], ...]
"""A series' labels but ``le``, sorted by name."""
Buckets = dict[float, float]
"""Upper bound (``le``) -> cumulative count."""
Histograms = dict[Labels, Buckets]
Fetch = Callable[[str, float], str]


def metrics_url(url: str) -> str:
    """``url`` checked (``http(s)://HOST[:PORT][/PATH]``, no credentials), ``/metrics`` as
    its path if it has none; ``ValueError`` saying what to fix otherwise."""
    parts = urllib.parse.urlsplit(url.strip())
    shape = "http://HOST:PORT/metrics (as 'eventml run --metrics-port' prints)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a worker metrics URL looks like {shape}, got {url!r}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ValueError(f"a worker metrics URL looks like {shape}: bad port in {url!r}") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"a worker metrics URL takes no credentials (it is shown on the "
                         f"dashboard): {shape}")
    path = parts.path if parts.path not in ("", "/") else "/metrics"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def parse_metrics(text: str, names: Iterable[str] = (PROCESSING, MODEL_LATENCY)
                  ) -> tuple[dict[str, Histograms], list[dict[str, str]]]:
    """The bucket counts of the histograms ``names`` in ``text`` (by name, then labels), and
    the label sets of ``eventml_worker_info``. ``ValueError`` if ``text`` does not parse."""
    wanted = set(names)
    out: dict[str, Histograms] = {}
    info: list[dict[str, str]] = []
    for family in text_string_to_metric_families(text):
        if family.name == INFO:
            info.extend(dict(s.labels) for s in family.samples if s.value)
        elif family.name in wanted and family.type == "histogram":
            series = out.setdefault(family.name, {})
            for s in family.samples:
                if s.name == family.name + "_bucket" and "le" in s.labels:
                    labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                    series.setdefault(labels, {})[float(s.labels["le"])] = float(s.value)
    return out, info


def histogram_delta(now: Buckets, before: Buckets | None) -> Buckets:
    """The counts added between two readings of one histogram: ``now`` itself if it is new
    or any count went down (the process restarted)."""
    if before is None or any(c < before.get(le, 0.0) for le, c in now.items()):
        return dict(now)
    return {le: c - before.get(le, 0.0) for le, c in now.items()}


def sum_histograms(parts: Iterable[Buckets]) -> Buckets:
    """Bucket counts summed over ``parts``, on the bounds they all have."""
    total: Buckets | None = None
    for p in parts:
        total = dict(p) if total is None else {le: c + p[le] for le, c in total.items() if le in p}
    return total or {}


def quantile_ms(buckets: Buckets, q: float) -> float | None:
    """The ``q``-quantile of a histogram in seconds, in milliseconds (see the module doc)."""
    found = histogram_quantile(q, sorted(buckets.items()))
    return None if found is None else round(found * 1000, 3)


@dataclass
class _Worker:
    url: str
    up: bool = False
    error: str | None = "not scraped yet"
    info: dict[str, str] | None = None
    last: dict[str, Histograms] | None = None


class WorkerScraper:
    """Scrapes ``urls`` (worker metrics endpoints; see the module docstring): each within
    ``timeout_s``, model latency over the last ``window`` scrapes. ``fetch(url, timeout_s)``
    reads one endpoint's text (default: HTTP GET, no proxy)."""

    def __init__(self, urls: Sequence[str], *, timeout_s: float = 0.5, window: int = 30,
                 fetch: Fetch | None = None) -> None:
        if not urls:
            raise ValueError("no worker metrics URL to scrape")
        if timeout_s <= 0 or window < 1:
            raise ValueError("need timeout_s > 0 and window >= 1")
        self.workers = [_Worker(u) for u in dict.fromkeys(metrics_url(u) for u in urls)]
        self.timeout_s, self.window = timeout_s, window
        self._fetch = fetch or fetch_text
        self._models: deque[Histograms] = deque(maxlen=window)
        self._pool: ThreadPoolExecutor | None = None

    @property
    def urls(self) -> list[str]:
        return [w.url for w in self.workers]

    def _read(self, url: str) -> tuple[dict[str, Histograms], list[dict[str, str]]] | str:
        try:
            return parse_metrics(self._fetch(url, self.timeout_s))
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}"
        except urllib.error.URLError as e:
            return str(e.reason)[:200]
        except (OSError, http.client.HTTPException) as e:
            return f"{type(e).__name__}: {e}"[:200]
        except ValueError as e:
            return f"not Prometheus metrics: {e}"[:200]

    def _read_all(self) -> list[tuple[dict[str, Histograms], list[dict[str, str]]] | str]:
        if len(self.workers) == 1:
            return [self._read(self.workers[0].url)]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(min(8, len(self.workers)),
                                            thread_name_prefix="eventml-scrape")
        return list(self._pool.map(self._read, self.urls))

    def scrape(self) -> dict[str, Any]:
        """Read every endpoint now: ``endpoints`` (url, up, error, app, worker),
        ``processing`` (p50/p95/p99 ms and batches since the last scrape) and ``models``
        (model, version, calls, p50/p99 ms over the window)."""
        batches: list[Buckets] = []
        models: dict[Labels, list[Buckets]] = {}
        for worker, read in zip(self.workers, self._read_all(), strict=True):
            if isinstance(read, str):
                worker.up, worker.error = False, read
                continue
            hists, info = read
            worker.up, worker.error = True, None
            worker.info = info[0] if info else None
            before, worker.last = worker.last, hists
            if before is None:  # the baseline: nothing to compare with yet
                continue
            for name, into in ((PROCESSING, None), (MODEL_LATENCY, models)):
                for labels, now in hists.get(name, {}).items():
                    delta = histogram_delta(now, before.get(name, {}).get(labels))
                    if into is None:
                        batches.append(delta)
                    else:
                        into.setdefault(labels, []).append(delta)
        processing = sum_histograms(batches)
        self._models.append({k: sum_histograms(v) for k, v in models.items()})
        return {
            "endpoints": [_endpoint(w) for w in self.workers],
            "processing": {"p50_ms": quantile_ms(processing, 0.5),
                           "p95_ms": quantile_ms(processing, 0.95),
                           "p99_ms": quantile_ms(processing, 0.99),
                           "batches": int(processing.get(float("inf"), 0))},
            "models": self._model_latency(),
        }

    def _model_latency(self) -> list[dict[str, Any]]:
        per: dict[Labels, list[Buckets]] = {}
        for interval in self._models:
            for labels, buckets in interval.items():
                per.setdefault(labels, []).append(buckets)
        out = []
        for labels, parts in sorted(per.items()):
            total = sum_histograms(parts)
            names = dict(labels)
            out.append({"model": names.get("model", ""), "version": names.get("version", ""),
                        "calls": int(total.get(float("inf"), 0)),
                        "p50_ms": quantile_ms(total, 0.5), "p99_ms": quantile_ms(total, 0.99)})
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def _endpoint(w: _Worker) -> dict[str, Any]:
    info: Mapping[str, str] = w.info or {}
    return {"url": w.url, "up": w.up, "error": w.error, "app": info.get("app"),
            "worker": info.get("worker")}


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_text(url: str, timeout_s: float) -> str:
    """``GET url`` directly (never through a proxy), the classic text format asked for."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain; version=0.0.4"})
    with _OPENER.open(request, timeout=timeout_s) as response:
        return bytes(response.read(MAX_BYTES)).decode("utf-8", errors="replace")
