"""Schemas and data contracts: a Confluent-compatible registry kept on the log.

>>> frame = encode_frame(7, b'{"amount": 12.5}')
>>> frame[:5]
b'\\x00\\x00\\x00\\x00\\x07'
>>> decode_frame(frame)
Frame(schema_id=7, payload=b'{"amount": 12.5}')

* :class:`SchemaRegistry`: subjects, versions, global ids, compatibility levels and
  modes, stored in the ``_schemas`` topic of the application's log.
* :func:`contract_of` / :class:`Contract`: a schema bound to a topic, validated when
  values are written and read (``app.topic(..., schema=...)``).
* the wire format: :func:`encode_frame` / :func:`decode_frame`.
* ``eventml.schema.api``: the REST API (``eventml serve``; needs ``eventml[serve]``).
"""

from eventml.schema.compat import LEVELS, Level
from eventml.schema.contract import BoundContract, Contract, ContractViolation, contract_of
from eventml.schema.core import SchemaVersion, StoredSchema
from eventml.schema.errors import (
    Incompatibility,
    IncompatibleSchema,
    InvalidSchema,
    SchemaError,
    SchemaNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from eventml.schema.registry import SchemaRegistry, parse_schema
from eventml.schema.types import ParsedSchema, Reference, SchemaType
from eventml.schema.wire import (
    HEADER_SIZE,
    MAGIC_BYTE,
    BadMagicByte,
    Frame,
    FrameError,
    ShortFrame,
    UnknownSchemaId,
    decode_frame,
    encode_frame,
)

__all__ = [
    "HEADER_SIZE",
    "LEVELS",
    "MAGIC_BYTE",
    "BadMagicByte",
    "BoundContract",
    "Contract",
    "ContractViolation",
    "Frame",
    "FrameError",
    "Incompatibility",
    "IncompatibleSchema",
    "InvalidSchema",
    "Level",
    "ParsedSchema",
    "Reference",
    "SchemaError",
    "SchemaNotFound",
    "SchemaRegistry",
    "SchemaType",
    "SchemaVersion",
    "ShortFrame",
    "StoredSchema",
    "SubjectNotFound",
    "UnknownSchemaId",
    "VersionNotFound",
    "contract_of",
    "decode_frame",
    "encode_frame",
    "parse_schema",
]
