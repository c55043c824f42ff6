"""annot's pure core: records, canonical encoding, signatures, CIDs, vote rules,
certificates and tallies. No I/O, no clock, no randomness: time and keys are
arguments, so every function here is deterministic."""

from protocol.errors import ProtocolError

__all__ = ["ProtocolError"]
