"""Inference over HTTP: ``POST /v1/predict/{model}`` (synchronous) and
``POST /v1/predict/{model}/async`` (the request travels as an event; the result comes back
at ``GET /v1/results/{id}``, on ``GET /v1/results/stream`` (SSE) and, if asked, to a webhook).

``{model}`` is ``NAME`` (the latest version), ``NAME@ALIAS`` or ``NAME/VERSION`` of the model
registry. The body is ``{"features": {...}}`` (one instance) or ``{"instances": [{...}, ...]}``
(at most :attr:`PredictLimits.max_instances`); each instance must hold every feature the
model version declares, as a finite JSON number (missing: 422 naming it). The answer is
``{"model", "version", "scores": [...]}`` and, when the version has a ``threshold`` metric,
``"decisions": [score >= threshold, ...]``.

Loaded versions are cached (:class:`ModelCache`, at most ``max_models``); ``NAME`` and
``NAME@ALIAS`` are resolved again at most every ``resolve_every_s`` (1 s), so an alias moved
with ``eventml models alias`` takes effect within a second. The matrix is built in the
version's declared feature order and scored in one ``predict_batch`` call in a worker
thread, off the event loop. Each version's latency (parsed body to scores: the matrix, the hop
to the thread, the model call; p50/p99 over its last 10,000 requests) and the async round trip are at ``GET /v1/predict/{model}/stats``.

**Authorization.** A prediction is a ``read`` of the model: every route here needs a key
allowing ``read`` on the model's NAME (``read:fraud`` covers ``fraud``, ``fraud@champion``
and ``fraud/3``). Since ``NAME@ALIAS`` and ``NAME/VERSION`` are not resource names, the
routes' policy (``api/auth.py``) is "any valid key" and the handler itself calls
``authorize(request, "read", NAME)`` once the reference is parsed; ``GET /v1/results/{id}``
checks ``read`` on the model the request named (404 first for an unknown id: ids are
random). ``GET /v1/results/stream`` carries every model's results: its policy is ``read:*``
(``?model=NAME`` keeps one model's, ``?until_s=`` ends the stream; a comment line every
``heartbeat_s``, 15 s by default; a reader more than 1,000 results behind is dropped).
Without ``authorize`` (a server without keys) prediction is open, as feature reads are.

**Async path.** The router appends each request as a CloudEvent (type
``model.predict.request``, id = the request id, key = the id, data ``{"request_id", "model",
"instances", "callback"?}``) to :attr:`AsyncConfig.requests_topic` and answers 202 with
``status_url``; with an ``Idempotency-Key`` header (1-128 of ``[A-Za-z0-9._:-]``) that key is
the request id, and a retry while this process still holds the request or its result is
answered the same way without being queued again. A worker, :func:`worker_app` (an eventml :class:`~eventml.engine.App`:
requests topic -> ``map_batch`` scoring each batch grouped by model reference -> results
topic, exactly-once), scores it; with ``run_worker=True`` it runs in a thread of this
process (``eventml serve`` alone is then a complete async path), else run it with ``eventml
run``. A thread of the router tails the results topic from where it stood at start-up and
keeps results (:class:`~eventml.api._results.ResultStore`: bounded, with a TTL); only the
process that accepted a request knows it is pending (202 ``{"status": "pending"}``),
another answers 404 until the result arrives. A request whose scoring fails still gets a
result, ``{"status": "failed", "error": ...}``.

**Webhooks.** With ``"callback": "https://..."`` in the body, the process that accepted the
request POSTs the result as a structured CloudEvent (``application/cloudevents+json``, type
``model.predict.result``, id = the request id) to it: a timeout per attempt, up to
``attempts`` tries on connection errors, 5xx and 429 (backoff doubling), never following a
redirect (a 3xx is a failure). SSRF: the URL must be http(s) without credentials; the host
is resolved at delivery and every address must be public: loopback only with
``allow_loopback``, private/link-local/reserved (e.g. 169.254.169.254, the cloud metadata
address) only with ``allow_private``; the connection goes to the address that was checked
(no second lookup: DNS rebinding cannot swap it). Any key allowed to predict can make the
server POST results to a public URL of its choice: keep prediction keys to trusted clients,
or egress-filter the server. Callbacks are kept in this process's memory: a restart before
the result loses the delivery (the result is still on the results topic).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from eventml.api._results import (
    INVALID_BODY,
    BadInput,
    Callback,
    Pending,
    ResultStore,
    address_refusal,
    matrix_of,
    parse_callback,
    parse_instances,
)
from eventml.api.errors import ApiError, ApiRoute, JSONResponse
from eventml.api.ingest import Authorize, read_body
from eventml.events.binding import to_message, to_structured
from eventml.events.envelope import Event
from eventml.log import ConsumerConfig, Log, LogError, RebalanceListener, TopicSpec
from eventml.ml._stats import InferenceStats, VersionStats
from eventml.ml.registry import (
    AliasNotFound,
    ArtifactCorrupt,
    InvalidModelName,
    LoadedModel,
    ModelNotFound,
    ModelRef,
    ModelRegistry,
    RegistryNotFound,
    parse_ref,
)

_log = logging.getLogger("eventml.api.predict")

REQUEST_TYPE = "model.predict.request"
RESULT_TYPE = "model.predict.result"
SOURCE = "/eventml/predict"
REQUESTS_TOPIC = "_predict.requests"
RESULTS_TOPIC = "_predict.results"
WORKER_APP = "eventml-predict"

MODEL_NOT_FOUND = 40461
RESULT_NOT_FOUND = 40462
INVALID_MODEL_REF = 42214
MODEL_UNUSABLE = 42216
MODEL_FAILED = 50003
LOG_UNAVAILABLE = 50302


@dataclass(frozen=True, slots=True)
class PredictLimits:
    max_body_bytes: int = 1_048_576
    max_instances: int = 1_000


@dataclass(frozen=True, slots=True)
class AsyncConfig:
    """The async path: topics (created with ``partitions`` if missing), the result store,
    webhook delivery and its SSRF switches (see the module docstring)."""

    requests_topic: str = REQUESTS_TOPIC
    results_topic: str = RESULTS_TOPIC
    partitions: int = 1
    max_results: int = 100_000
    result_ttl_s: float = 600.0
    callback_timeout_s: float = 5.0
    callback_attempts: int = 3
    callback_backoff_s: float = 0.5
    max_deliveries: int = 16  # at once
    allow_loopback: bool = False
    allow_private: bool = False


# -- models -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """A loaded version and what scoring it needs."""

    loaded: LoadedModel
    features: tuple[str, ...]
    threshold: float | None

    @property
    def name(self) -> str:
        return self.loaded.version.name

    @property
    def number(self) -> int:
        return self.loaded.version.version

    def score(self, x: np.ndarray[Any, Any]) -> list[float]:
        scores = np.asarray(self.loaded.predict_batch(x), dtype=np.float64).reshape(-1)
        if scores.shape != (len(x),):
            raise ValueError(f"model {self.name}/{self.number} returned {scores.shape[0]} scores "
                             f"for {len(x)} rows")
        out: list[float] = scores.tolist()
        return out

    def answer(self, scores: list[float]) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.name, "version": self.number, "scores": scores}
        if self.threshold is not None:
            out["decisions"] = [s >= self.threshold for s in scores]
        return out


class ModelCache:
    """Loaded versions of ``registry`` (LRU, at most ``max_models``); ``NAME`` and
    ``NAME@ALIAS`` are re-resolved when their resolution is older than ``resolve_every_s``.
    Thread-safe; blocking (call it from a worker thread)."""

    def __init__(self, registry: ModelRegistry, *, max_models: int = 16, resolve_every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry, self.max_models, self.resolve_every_s = registry, max_models, resolve_every_s
        self.clock = clock
        self._versions: OrderedDict[tuple[str, int], Ready] = OrderedDict()
        self._resolved: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._loading = threading.Lock()  # one load at a time: no version loaded twice

    def get(self, ref: ModelRef) -> Ready:
        number = ref.version if ref.version is not None else self._resolve(ref)
        key = (ref.name, number)
        with self._lock:
            ready = self._versions.get(key)
            if ready is not None:
                self._versions.move_to_end(key)
                return ready
        with self._loading:
            with self._lock:
                ready = self._versions.get(key)
            if ready is None:
                ready = _ready(self.registry.load(f"{ref.name}/{number}"))
            with self._lock:
                self._versions[key] = ready
                self._versions.move_to_end(key)
                while len(self._versions) > self.max_models:
                    self._versions.popitem(last=False)
        return ready

    def _resolve(self, ref: ModelRef) -> int:
        text, now = str(ref), self.clock()
        known = self._resolved.get(text)
        if known is not None and now - known[0] < self.resolve_every_s:
            return known[1]
        number = self.registry.resolve(ref).version
        self._resolved[text] = (now, number)
        return number


def _ready(loaded: LoadedModel) -> Ready:
    v = loaded.version
    features = tuple(v.features) or tuple(getattr(loaded.model, "feature_names", None) or ())
    threshold = v.metrics.get("threshold")
    return Ready(loaded, features, None if threshold is None else float(threshold))


def _ref(text: str) -> ModelRef:
    try:
        return parse_ref(text)
    except InvalidModelName as e:
        raise ApiError(422, INVALID_MODEL_REF, f"{e}; a model is NAME, NAME@ALIAS or NAME/VERSION"
                       ) from None


def _lookup(cache: ModelCache, ref: ModelRef) -> Ready:
    try:
        ready = cache.get(ref)
    except RegistryNotFound:  # its message names a server path
        raise ApiError(404, MODEL_NOT_FOUND, f"no model named {ref.name!r}") from None
    except (ModelNotFound, AliasNotFound) as e:
        raise ApiError(404, MODEL_NOT_FOUND, str(e)) from None
    except ArtifactCorrupt as e:
        _log.error("eventml predict: %s", e)
        raise ApiError(503, MODEL_FAILED, f"model {ref} cannot be loaded (see the server log)") from None
    if not ready.features:
        raise ApiError(422, MODEL_UNUSABLE, f"model {ready.name}/{ready.number} declares no feature "
                       "names: register it with features=[...] to serve it over HTTP")
    return ready


def _bad(e: BadInput) -> ApiError:
    return ApiError(e.status, e.code, e.message)


# -- the async worker ---------------------------------------------------------------------


def score_requests(cache: ModelCache, values: list[Any]) -> list[dict[str, Any]]:
    """One result per request value (never raises: a failure is a ``failed`` result), each
    model reference scored in one call."""
    out: list[dict[str, Any] | None] = [None] * len(values)
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        ok = isinstance(v, dict) and isinstance(v.get("model"), str) and isinstance(v.get("instances"), list)
        if ok:
            groups.setdefault(v["model"], []).append(i)
        else:
            rid = v.get("request_id") if isinstance(v, dict) else None
            out[i] = _failed(rid, None, "not a prediction request")
    for ref_text, idx in groups.items():
        try:
            ready = _lookup(cache, parse_ref(ref_text))
            rows: list[Any] = []
            for i in idx:
                rows.extend(values[i]["instances"])
            scores = ready.score(matrix_of(rows, ready.features))
        except Exception as e:
            for i in idx:
                out[i] = _one(cache, values[i], e)
            continue
        at = 0
        for i in idx:
            n = len(values[i]["instances"])
            out[i] = {"request_id": values[i].get("request_id"), "status": "done",
                      **ready.answer(scores[at:at + n])}
            at += n
    return [o if o is not None else _failed(None, None, "lost") for o in out]


def _one(cache: ModelCache, value: dict[str, Any], error: Exception) -> dict[str, Any]:
    """A request of a failed group, alone (the group may have failed for another's input)."""
    rid, ref_text = value.get("request_id"), value["model"]
    try:
        ready = _lookup(cache, parse_ref(ref_text))
        scores = ready.score(matrix_of(value["instances"], ready.features))
    except (ApiError, BadInput, InvalidModelName) as e:
        return _failed(rid, ref_text, e.message if isinstance(e, ApiError | BadInput) else str(e))
    except Exception as e:
        _log.exception("eventml predict: scoring request %s with %s failed", rid, ref_text)
        return _failed(rid, ref_text, f"the model failed ({type(e).__name__}); see the server log")
    return {"request_id": rid, "status": "done", **ready.answer(scores)}


def _failed(rid: Any, model: str | None, message: str) -> dict[str, Any]:
    return {"request_id": rid, "status": "failed", "model": model, "error": message}


def worker_app(registry: ModelRegistry, *, broker: str | None = None, config: AsyncConfig = AsyncConfig(),
               cache: ModelCache | None = None) -> Any:
    """The eventml app that scores async requests: ``config.requests_topic`` ->
    :func:`score_requests` per micro-batch -> ``config.results_topic`` (run it with a
    :class:`~eventml.engine.Worker`, or ``eventml run`` on a module attribute holding it)."""
    from eventml.engine import App

    models = cache or ModelCache(registry)
    app = App(WORKER_APP, broker=broker, max_wait_ms=100, min_batch=1)  # poll returns at the first record
    requests = app.topic(config.requests_topic, partitions=config.partitions)
    results = app.topic(config.results_topic, partitions=config.partitions, event_type=RESULT_TYPE)

    def score(values: list[Any]) -> list[dict[str, Any]]:
        return score_requests(models, values)

    score.__qualname__ = "score_requests"
    app.stream(requests).map_batch(score).to(results)
    return app


class _Threads:
    """The in-process worker and the results tail, each a thread with its own consumer."""

    def __init__(self, service: _Service, run_worker: bool) -> None:
        self.service, self.run_worker = service, run_worker
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.worker: Any = None

    def start(self, start_at: dict[int, int]) -> None:
        self.threads = [threading.Thread(target=self._tail, args=(start_at,), daemon=True,
                                         name="eventml-predict-results")]
        if self.run_worker:
            self.threads.append(threading.Thread(target=self._work, daemon=True,
                                                 name="eventml-predict-worker"))
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        if self.worker is not None:
            self.worker.stop()
        for t in self.threads:
            t.join(timeout=10)

    def _work(self) -> None:
        from eventml.engine import Worker

        s = self.service
        app = worker_app(s.cache.registry, config=s.config, cache=s.cache)
        # one transactional id per process: two servers on one host must not fence each other
        app.configure(instance=f"{socket.gethostname() or 'local'}-{os.getpid()}")
        while not self.stop.is_set():
            try:
                self.worker = Worker(app, log=s.log)
                try:
                    while not self.stop.is_set():
                        self.worker.step()
                finally:
                    self.worker.close()
            except Exception:
                _log.exception("eventml predict: the in-process worker failed; restarting in 1 s")
                self.stop.wait(1.0)

    def _tail(self, start_at: dict[int, int]) -> None:
        while not self.stop.is_set():
            try:
                self._tail_once(start_at)
            except Exception:
                _log.exception("eventml predict: tailing %s failed; retrying in 1 s",
                               self.service.config.results_topic)
                self.stop.wait(1.0)

    def _tail_once(self, start_at: dict[int, int]) -> None:
        """Read results from ``start_at`` (partition -> offset, advanced as they arrive)."""
        s = self.service

        def seek(tps: frozenset[Any]) -> None:
            for tp in tps:
                consumer.seek(tp, start_at.get(tp.partition, 0))

        group = f"_predict-tail-{uuid.uuid4().hex[:12]}"
        consumer = s.log.consumer(group, [s.config.results_topic],
                                  config=ConsumerConfig(auto_offset_reset="earliest"),
                                  listener=RebalanceListener(on_assign=seek))
        try:
            while not self.stop.is_set():
                for record in consumer.poll(500, 0.1):
                    start_at[record.partition] = record.offset + 1
                    s.arrived(record.value)
        finally:
            consumer.close()


class _Service:
    """The async path's state: store, subscribers, deliveries, threads."""

    def __init__(self, log: Log, cache: ModelCache, config: AsyncConfig, run_worker: bool,
                 clock: Callable[[], float]) -> None:
        self.log, self.cache, self.config, self.clock = log, cache, config, clock
        self.store = ResultStore(max_entries=config.max_results, ttl_s=config.result_ttl_s)
        self.round_trip = VersionStats()
        self.subscribers: set[tuple[asyncio.Queue[dict[str, Any] | None], str | None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.deliveries: set[asyncio.Task[None]] = set()
        self.semaphore: asyncio.Semaphore | None = None
        self.threads = _Threads(self, run_worker)
        self.stats_lock = threading.Lock()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.semaphore = asyncio.Semaphore(self.config.max_deliveries)
        c = self.config

        def setup() -> dict[int, int]:
            for topic in (c.requests_topic, c.results_topic):
                self.log.create_topic(TopicSpec(topic, c.partitions), exist_ok=True)
            return dict(self.log.end_offsets(c.results_topic))

        self.threads.start(await run_in_threadpool(setup))

    async def stop(self) -> None:
        await run_in_threadpool(self.threads.close)
        for task in list(self.deliveries):
            task.cancel()
        for queue, _ in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def arrived(self, raw: bytes | None) -> None:
        """A record of the results topic (the tail thread)."""
        try:
            result = orjson.loads(raw or b"null")
            rid = result["request_id"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            _log.warning("eventml predict: a record of %s is not a result", self.config.results_topic)
            return
        if not isinstance(rid, str):
            return
        now = self.clock()
        pending = self.store.put(rid, result, now)
        if pending is not None:
            with self.stats_lock:
                self.round_trip.add(1, now - pending.accepted_at)
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(self._publish, result, pending)

    def _publish(self, result: dict[str, Any], pending: Pending | None) -> None:
        name = _name_of(result.get("model"))
        for queue, model in list(self.subscribers):
            if model is None or model == name:
                try:
                    queue.put_nowait(result)
                except asyncio.QueueFull:  # a reader too slow: its stream ends
                    self.subscribers.discard((queue, model))
        if pending is not None and pending.callback is not None:
            task = asyncio.get_running_loop().create_task(self._deliver(pending.callback, result))
            self.deliveries.add(task)
            task.add_done_callback(self.deliveries.discard)

    async def _deliver(self, url: str, result: dict[str, Any]) -> None:
        assert self.semaphore is not None
        event = Event(RESULT_TYPE, result, source=SOURCE, id=str(result["request_id"]),
                      subject=_name_of(result.get("model")))
        body = orjson.dumps(to_structured(event))
        async with self.semaphore:
            outcome = await run_in_threadpool(deliver, parse_callback(url), body, self.config)
        if outcome != "delivered":
            _log.warning("eventml predict: result %s not delivered to its callback: %s",
                        result["request_id"], outcome)


def _name_of(model: Any) -> str | None:
    if not isinstance(model, str):
        return None
    return model.split("@", 1)[0].split("/", 1)[0]


def deliver(callback: Callback, body: bytes, config: AsyncConfig,
            sleep: Callable[[float], None] = time.sleep) -> str:
    """POST ``body`` to ``callback`` (see the module docstring): ``"delivered"`` or why not."""
    try:
        infos = socket.getaddrinfo(callback.host, callback.port, type=socket.SOCK_STREAM)
    except OSError as e:
        return f"cannot resolve {callback.host}: {e}"
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        why = address_refusal(address, allow_loopback=config.allow_loopback,
                              allow_private=config.allow_private)
        if why is not None:
            return f"refused {callback.host} ({address}): {why}"
    outcome = "no address"
    for attempt in range(config.callback_attempts):
        if attempt:
            sleep(config.callback_backoff_s * 2 ** (attempt - 1))
        try:
            status = _post(callback, addresses[0], body, config.callback_timeout_s)
        except (OSError, http.client.HTTPException) as e:
            outcome = f"{type(e).__name__}: {e}"
            continue
        if 200 <= status < 300:
            return "delivered"
        outcome = f"the callback answered {status}"
        if 300 <= status < 400:
            return outcome + " (redirects are not followed)"
        if status != 429 and status < 500:
            return outcome
    return outcome


def _post(callback: Callback, address: str, body: bytes, timeout_s: float) -> int:
    kind = http.client.HTTPSConnection if callback.scheme == "https" else http.client.HTTPConnection
    conn = kind(callback.host, callback.port, timeout=timeout_s)

    def connect(_: Any, timeout: Any = None, source: Any = None) -> socket.socket:
        return socket.create_connection((address, callback.port), timeout, source)

    conn._create_connection = connect  # type: ignore[attr-defined]  # the checked address, no new lookup
    try:
        conn.request("POST", callback.target, body=body, headers={
            "Content-Type": "application/cloudevents+json", "User-Agent": "eventml-webhook"})
        response = conn.getresponse()
        response.read(65_536)
        return response.status
    finally:
        conn.close()


# -- the routes --------------------------------------------------------------------------

_ERROR = {"type": "object", "required": ["error_code", "message"], "properties": {
    "error_code": {"type": "integer"}, "message": {"type": "string"}}}
_INSTANCE = {"type": "object", "additionalProperties": {"type": "number"}}
_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "properties": {
        "features": _INSTANCE,
        "instances": {"type": "array", "items": _INSTANCE, "minItems": 1},
        "callback": {"type": "string", "format": "uri", "description": "async only: a webhook"}}}}}}}
_PREDICTION = {"type": "object", "required": ["model", "version", "scores"], "properties": {
    "model": {"type": "string"}, "version": {"type": "integer"},
    "scores": {"type": "array", "items": {"type": "number"}},
    "decisions": {"type": "array", "items": {"type": "boolean"}}}}


def _errors(*pairs: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": what, "content": {"application/json": {"schema": _ERROR}}}
            for status, what in [(401, "No or bad API key"), (403, "The key may not read the model"),
                                 (429, "Rate limit of the key reached"), *pairs]}


_INPUT_ERRORS = ((404, "No such model, version or alias"), (413, "Body or instance count too large"),
                 (422, "Malformed body, missing or non-numeric feature, bad reference"))


def predict_router(
    registry: ModelRegistry,
    *,
    authorize: Authorize | None = None,
    log: Log | None = None,
    limits: PredictLimits = PredictLimits(),
    config: AsyncConfig = AsyncConfig(),
    run_worker: bool = False,
    cache: ModelCache | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> APIRouter:
    """The prediction routes over ``registry`` (see the module docstring). With ``log`` also
    the async routes, whose setup (topics, the results tail, with ``run_worker`` the worker
    thread) runs in the router's lifespan: ``app.include_router`` merges it into the app's."""
    models = cache or ModelCache(registry)
    service = None if log is None else _Service(log, models, config, run_worker, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            await service.start()
        try:
            yield
        finally:
            if service is not None:
                await service.stop()

    api = APIRouter(route_class=ApiRoute, default_response_class=JSONResponse, tags=["predict"],
                    lifespan=lifespan)
    stats = InferenceStats()

    async def check(request: Request, name: str) -> None:
        if authorize is not None:
            await authorize(request, "read", name)

    async def prepare(request: Request, model: str, *, allow_callback: bool
                      ) -> tuple[Ready, list[dict[str, Any]], str | None]:
        ref = _ref(model)
        await check(request, ref.name)
        ready = await run_in_threadpool(_lookup, models, ref)
        body = await read_body(request, limits.max_body_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ApiError(422, INVALID_BODY, f"the body is not valid JSON: {e}") from None
        try:
            instances = parse_instances(document, limits.max_instances)
            callback = document.get("callback")
            if callback is not None:
                if not allow_callback:
                    raise BadInput(422, INVALID_BODY, '"callback" is for /async requests only')
                refused = _literal_refusal(parse_callback(callback), config)
                if refused:
                    raise BadInput(422, 42215, refused)
        except BadInput as e:
            raise _bad(e) from None
        return ready, instances, callback

    if service is not None:
        svc = service

        @api.post("/v1/predict/{model:path}/async", status_code=202, openapi_extra=_BODY,
                  summary="Queue a prediction: the result comes at status_url, on the stream "
                          "and to the callback",
                  responses={202: {"description": "Queued"},
                             **_errors(*_INPUT_ERRORS, (503, "The log refused the request"))})
        async def predict_async(request: Request, model: str) -> Response:
            ready, instances, callback = await prepare(request, model, allow_callback=True)
            try:  # checked again by the worker, which may score a newer version of an alias
                matrix_of(instances, ready.features)
            except BadInput as e:
                raise _bad(e) from None
            rid = _idempotency_key(request) or str(uuid.uuid4())
            url = f"/v1/results/{rid}"
            accepted = JSONResponse({"request_id": rid, "status": "pending", "status_url": url},
                                    status_code=202, headers={"Location": url})
            known, waiting = svc.store.get(rid, svc.clock())
            if known is not None or waiting is not None:
                return accepted  # a retry of a request this process holds: not queued again
            data: dict[str, Any] = {"request_id": rid, "model": model, "instances": instances}
            if callback is not None:
                data["callback"] = callback
            message = to_message(Event(REQUEST_TYPE, data, source=SOURCE, id=rid, key=rid,
                                       subject=ready.name))
            svc.store.expect(rid, Pending(ready.name, svc.clock(), callback))
            try:
                await run_in_threadpool(svc.log.append, config.requests_topic, [message])
            except LogError as e:
                svc.store.forget(rid)
                raise ApiError(503, LOG_UNAVAILABLE, f"the log did not take the request "
                               f"({type(e).__name__}); retry") from None
            return accepted

        @api.get("/v1/results/stream", summary="Results as they arrive (Server-Sent Events)",
                 response_class=StreamingResponse,
                 responses={200: {"content": {"text/event-stream": {}}}, **_errors()})
        async def result_stream(request: Request, model: str | None = None, heartbeat_s: float = 15.0,
                                until_s: float | None = None) -> Response:
            """``model``: only that model's results; ``until_s``: end the stream after that many
            seconds (default: never)."""
            beat = min(60.0, max(1.0, heartbeat_s))  # a comment line keeps proxies from timing out
            end = None if until_s is None else svc.clock() + max(0.0, until_s)
            queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=1000)
            entry = (queue, model)
            svc.subscribers.add(entry)

            async def events() -> AsyncIterator[bytes]:
                try:
                    yield b": eventml results\n\n"
                    while True:
                        wait = beat if end is None else min(beat, end - svc.clock())
                        if wait <= 0:
                            return
                        try:
                            item = await asyncio.wait_for(queue.get(), wait)
                        except TimeoutError:
                            if await request.is_disconnected() or (end is not None and svc.clock() >= end):
                                return
                            yield b": keep-alive\n\n"
                            continue
                        if item is None or entry not in svc.subscribers:
                            return
                        yield (b"event: result\nid: " + str(item.get("request_id")).encode()
                               + b"\ndata: " + orjson.dumps(item) + b"\n\n")
                finally:
                    svc.subscribers.discard(entry)

            return StreamingResponse(events(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

        @api.get("/v1/results/{request_id}", summary="An async prediction's result",
                 responses={200: {"description": "The result (status done or failed)"},
                            202: {"description": "Accepted, not scored yet"},
                            **_errors((404, "No such request (or it expired)"))})
        async def get_result(request: Request, request_id: str) -> Response:
            found, pending = svc.store.get(request_id, svc.clock())
            if found is None and pending is None:
                raise ApiError(404, RESULT_NOT_FOUND, f"no result for request {request_id[:64]!r}: "
                               f"unknown, or older than {config.result_ttl_s:g} s")
            name = pending.model if pending is not None else _name_of(found and found.get("model"))
            await check(request, name or "*")
            if found is None:
                return JSONResponse({"request_id": request_id, "status": "pending"}, status_code=202)
            return JSONResponse(found)

    @api.get("/v1/predict/{model:path}/stats", summary="Latency per version (p50/p99 of recent requests)",
             responses=_errors((422, "Bad model reference")))
    async def predict_stats(request: Request, model: str) -> Response:
        ref = _ref(model)
        await check(request, ref.name)
        prefix = f"{ref.name}/"
        versions = {label[len(prefix):]: s.as_dict() for label, s in list(stats.versions.items())
                    if label is not None and label.startswith(prefix)}
        out: dict[str, Any] = {"model": ref.name, "versions": versions}
        if service is not None:
            with service.stats_lock:
                out["async_round_trip"] = {"requests": service.round_trip.batches,
                                           "p50_ms": service.round_trip.percentile_ms(0.5),
                                           "p99_ms": service.round_trip.percentile_ms(0.99)}
        return JSONResponse(out)

    @api.post("/v1/predict/{model:path}", openapi_extra=_BODY, summary="Score features now",
              responses={200: {"description": "Scores", "content": {"application/json": {
                  "schema": _PREDICTION}}}, **_errors(*_INPUT_ERRORS, (500, "The model failed"))})
    async def predict_now(request: Request, model: str) -> Response:
        ready, instances, _ = await prepare(request, model, allow_callback=False)
        t0 = time.perf_counter()  # from the parsed body: the matrix, the hop to a thread, the call
        try:
            x = matrix_of(instances, ready.features)
        except BadInput as e:
            raise _bad(e) from None
        try:
            scores = await run_in_threadpool(ready.score, x)
        except Exception:
            _log.exception("eventml predict: %s/%s failed", ready.name, ready.number)
            raise ApiError(500, MODEL_FAILED, f"model {ready.name}/{ready.number} failed to score; "
                           "see the server log") from None
        stats.record(f"{ready.name}/{ready.number}", len(instances), time.perf_counter() - t0)
        return JSONResponse(ready.answer(scores))

    return api


_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")


def _idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header as the request id (1-128 of ``[A-Za-z0-9._:-]``), if sent."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 128 or not set(key) <= _KEY_CHARS:
        raise ApiError(422, INVALID_BODY, "Idempotency-Key must be 1 to 128 letters, digits or . _ : -")
    return key


def _literal_refusal(callback: Callback, config: AsyncConfig) -> str | None:
    """An IP-literal callback host refused now (names are checked when delivering)."""
    why = address_refusal(callback.host, allow_loopback=config.allow_loopback,
                          allow_private=config.allow_private)
    if why is None or why.endswith("is not an IP address"):
        return None
    return f"callback host {callback.host} is refused: {why}"
