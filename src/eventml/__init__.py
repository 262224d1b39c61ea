"""eventml: event-driven machine learning on a durable, partitioned log.

The top level re-exports what a first program needs; the rest lives in its
package (``eventml.log``, ``eventml.events``, ``eventml.testing``, ...).
"""

from importlib.metadata import PackageNotFoundError, version

from eventml.events import Event, from_record, to_message
from eventml.log import (
    ConsumerConfig,
    LogError,
    Message,
    Record,
    TopicPartition,
    TopicSpec,
    open_log,
)

try:
    __version__ = version("eventml")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

__all__ = [
    "ConsumerConfig",
    "Event",
    "LogError",
    "Message",
    "Record",
    "TopicPartition",
    "TopicSpec",
    "__version__",
    "from_record",
    "open_log",
    "to_message",
]
