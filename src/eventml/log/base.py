"""The log contract: topics of partitions, batch append, consumer groups, seeks.

Every backend (memory, embedded SQLite, Kafka) implements :class:`Log` and
:class:`Consumer` with the same semantics; ``tests/contract`` runs one suite
against all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

CleanupPolicy = Literal["delete", "compact"]
OffsetReset = Literal["earliest", "latest"]
Headers = tuple[tuple[str, bytes], ...]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Message(NamedTuple):
    """What a producer appends. ``partition=None`` routes by key (murmur2) or round-robin."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp_ms: int | None = None
    partition: int | None = None


class Record(NamedTuple):
    """What a consumer reads: a message with its place in the log."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


class RecordMetadata(NamedTuple):
    """Where an appended message landed."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How a topic is laid out and kept.

    ``retention_ms``/``retention_bytes`` (per partition) apply to ``cleanup_policy="delete"``;
    ``"compact"`` keeps the latest record per key (a record with ``value=None`` deletes its key).
    ``config`` passes backend-specific topic settings through (Kafka topic configs such
    as ``segment.ms``); backends ignore the keys that mean nothing to them.
    """

    name: str
    partitions: int = 1
    retention_ms: int | None = None
    retention_bytes: int | None = None
    cleanup_policy: CleanupPolicy = "delete"
    config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 249 or not _valid_topic_name(self.name):
            raise InvalidTopic(
                f"invalid topic name {self.name!r}: use 1-249 characters of [a-zA-Z0-9._-]"
            )
        if self.partitions < 1:
            raise InvalidTopic(f"topic {self.name!r}: partitions must be >= 1, got {self.partitions}")
        if self.cleanup_policy not in ("delete", "compact"):
            raise InvalidTopic(
                f"topic {self.name!r}: cleanup_policy must be 'delete' or 'compact', "
                f"got {self.cleanup_policy!r}"
            )


@dataclass(frozen=True, slots=True)
class TopicDescription:
    spec: TopicSpec
    start_offsets: Mapping[int, int]
    end_offsets: Mapping[int, int]

    @property
    def records(self) -> int:
        """Records currently held (end minus start, summed over partitions)."""
        return sum(self.end_offsets[p] - self.start_offsets[p] for p in self.end_offsets)


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Consumer-group settings, named as in Kafka.

    A member that has not polled for ``max_poll_interval_ms`` (or, on Kafka, whose
    heartbeats stop for ``session_timeout_ms``; on the embedded log, whose process
    died) loses its partitions to the live members.
    """

    auto_offset_reset: OffsetReset = "latest"
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000
    extra: Mapping[str, str] = field(default_factory=dict)


RebalanceCallback = Callable[[frozenset[TopicPartition]], None]


@dataclass(frozen=True, slots=True)
class RebalanceListener:
    """Called inside ``poll`` when partitions move: revoke before they leave, assign after."""

    on_assign: RebalanceCallback | None = None
    on_revoke: RebalanceCallback | None = None


class LogError(Exception):
    """Base of the log's errors; the message says what to fix."""


class InvalidTopic(LogError, ValueError):
    pass


class UnknownTopic(LogError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown topic"


class TopicExists(LogError):
    pass


class BrokerUnavailable(LogError):
    pass


class CommitFailed(LogError):
    """The commit was refused, e.g. because the partition moved to another member."""


class Fenced(CommitFailed):
    """A newer producer with the same transactional id (or a newer group generation)
    took over: this instance is a zombie and must stop writing."""


class Consumer(ABC):
    """A member of a consumer group. Not thread-safe: use it from one thread."""

    group: str

    @abstractmethod
    def poll(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Record]:
        """Up to ``max_records`` records from the assigned partitions, waiting at most ``timeout_s``.

        Also takes part in the group: joins, heartbeats, and applies rebalances.
        """

    @abstractmethod
    def assignment(self) -> frozenset[TopicPartition]: ...

    @abstractmethod
    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record ``poll`` returns for ``tp``."""

    @abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit next-to-read offsets (default: the current positions), synchronously."""

    @abstractmethod
    def committed(
        self, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int | None]:
        """The group's committed offsets (``None`` where nothing was committed)."""

    @abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    @abstractmethod
    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None: ...

    @abstractmethod
    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None: ...

    @abstractmethod
    def seek_to_time(
        self, timestamp_ms: int, partitions: Iterable[TopicPartition] | None = None
    ) -> None:
        """Move to the first record with timestamp >= ``timestamp_ms`` (or the end)."""

    @abstractmethod
    def lag(self) -> dict[TopicPartition, int]:
        """Per assigned partition: end offset minus committed offset (or position if none)."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group; its partitions move to the remaining members."""

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transaction(ABC):
    """Appends and a consumer group's offsets that become visible together, or not at all.

    Use it as a context manager: it commits when the block ends and aborts if
    the block raises. Appends are not visible to other readers before
    :meth:`commit`; an aborted transaction leaves no trace (Kafka: read_committed
    readers skip it). :meth:`commit` raises :class:`CommitFailed` (partitions
    moved to another member) or :class:`Fenced` (a newer producer took over);
    either way nothing of the transaction is visible, and the caller must rewind
    to the committed offsets and drop state derived since.
    """

    @abstractmethod
    def append(self, topic: str, messages: Sequence[Message]) -> None:
        """Add messages to the transaction (placed as :meth:`Log.append` places them)."""

    @abstractmethod
    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the bound consumer's next-to-read ``offsets`` with the appends."""

    @abstractmethod
    def commit(self) -> None:
        """Make everything visible atomically; raises as described above."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything; never raises for an already-failed transaction."""

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class TransactionalProducer(ABC):
    """Writes in transactions under a stable ``transactional_id``.

    Creating a producer fences any older one with the same id (a zombie from a
    previous run): the older one's next commit raises :class:`Fenced`.
    """

    transactional_id: str

    @abstractmethod
    def begin(self, consumer: Consumer | None = None) -> Transaction:
        """Start a transaction; ``consumer`` is the group whose offsets it may commit."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the producer's resources."""


class Log(ABC):
    """A durable, partitioned, append-only log."""

    url: str

    @abstractmethod
    def create_topic(self, spec: TopicSpec, *, exist_ok: bool = False) -> None: ...

    @abstractmethod
    def delete_topic(self, name: str) -> None: ...

    @abstractmethod
    def list_topics(self) -> list[str]:
        """User topics, sorted by name."""

    @abstractmethod
    def describe_topic(self, name: str) -> TopicDescription: ...

    @abstractmethod
    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        """Append a batch; all-or-nothing where the backend allows (embedded, memory).

        Returns one :class:`RecordMetadata` per message, in order. Returning means
        acknowledged: durable per the backend's durability setting.
        """

    @abstractmethod
    def start_offsets(self, topic: str) -> dict[int, int]: ...

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]: ...

    @abstractmethod
    def offsets_for_time(self, topic: str, timestamp_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose timestamp >= ``timestamp_ms`` (end offset if none)."""

    @abstractmethod
    def consumer(
        self,
        group: str,
        topics: Sequence[str],
        *,
        config: ConsumerConfig | None = None,
        listener: RebalanceListener | None = None,
    ) -> Consumer:
        """Join ``group`` subscribed to ``topics``; partitions are assigned on ``poll``."""

    @abstractmethod
    def committed_offsets(
        self, group: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        """``group``'s committed offsets on ``partitions`` (``None``: nothing committed
        there), read without joining the group: asking never moves a partition between its
        members (lag pages, dashboards, chaos checkers). Offsets committed in a transaction
        count once it commits."""

    def transactional_producer(self, transactional_id: str) -> TransactionalProducer:
        """A producer whose appends and offset commits are atomic (exactly-once)."""
        raise LogError(f"{type(self).__name__} does not support transactions")

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Apply retention and compaction now; returns records deleted.

        Backends whose server does this on its own schedule (Kafka) return 0.
        """
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and files."""

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _valid_topic_name(name: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
