"""The protocol package's error tree.

Every failure the pure core can report is a ``ProtocolError``; a caller at the
edge catches that one class and gets a message that says what was wrong.

    ProtocolError
    ├── DecodeError                  bytes that are not a valid record/frame
    │   ├── NonCanonicalError        re-encoding gives different bytes
    │   ├── TrailingBytesError       bytes left after the first value
    │   ├── TooLargeError            over a size or count limit (checked before allocating)
    │   ├── FloatError               a float inside signed data
    │   ├── UnknownKindError         a record kind this version does not know
    │   ├── UnknownFieldError        a field this kind does not have
    │   ├── MissingFieldError        a field this kind requires
    │   ├── FieldTypeError           a field of the wrong type or out of range
    │   └── WrongNetworkError        a record signed for another network
    ├── SignatureError               signature does not verify for the author
    ├── KeyError_                    a malformed key or peer id
    ├── CidError                     a malformed CID, or a block that does not match it
    │   └── BlockMismatchError       bytes whose hash is not the CID's
    ├── GenesisError                 an invalid genesis or parameter set
    ├── VoteError                    a vote that breaks the vote rules
    │   ├── NotValidatorError        a vote by a key outside the validator set
    │   ├── ConflictingVoteError     two votes by one validator, one item/round/phase
    │   └── InvalidEvidenceError     a vote pair offered as evidence that proves no equivocation
    ├── CertificateError             a certificate that does not prove finality
    ├── TallyError                   an invalid tally computation or tally vote
    │   └── MissingTallyError        a tally named by a task (weights_from) is not final here
    └── AggregationError             annotations that cannot be aggregated
        └── DuplicateAnnotationError two annotations by one author for one item
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every error raised by :mod:`protocol`."""


class DecodeError(ProtocolError):
    """Bytes that do not decode to a valid value."""


class NonCanonicalError(DecodeError):
    """The bytes decode, but are not the one canonical encoding of the value."""


class TrailingBytesError(DecodeError):
    """Bytes remain after the first complete value."""


class TooLargeError(DecodeError):
    """A size or count limit is exceeded."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} is {size}, over the limit of {limit}")
        self.what = what
        self.size = size
        self.limit = limit


class VoteTooLargeError(TooLargeError):
    """A vote with more entries than the genesis allows, refused before its entries are
    read; ``reason`` is admission's name for the same refusal."""

    reason = "vote_too_many_entries"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__("vote entries", size, limit)


def reason_of(exc: BaseException) -> str:
    """A stable reason label for metrics: the ``reason`` an error names (a refusal that
    admission also makes, under admission's name), else its class name. The RPC,
    gossip and sync paths all label refusals this way."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) else type(exc).__name__


class FloatError(DecodeError):
    """A float appears in signed data (only integers are allowed)."""


class UnknownKindError(DecodeError):
    """A record kind this version does not know."""

    def __init__(self, kind: object) -> None:
        super().__init__(f"unknown record kind {kind!r}")
        self.kind = kind


class UnknownFieldError(DecodeError):
    """A field this kind does not define."""

    def __init__(self, where: str, field: object) -> None:
        super().__init__(f"{where}: unknown field {field!r}")
        self.where = where
        self.field = field


class MissingFieldError(DecodeError):
    """A required field is absent."""

    def __init__(self, where: str, field: str) -> None:
        super().__init__(f"{where}: missing field {field!r}")
        self.where = where
        self.field = field


class FieldTypeError(DecodeError):
    """A field has the wrong type or is out of range."""


class WrongNetworkError(DecodeError):
    """A record made for another network."""

    def __init__(self, got: bytes, want: bytes) -> None:
        super().__init__(f"record is for network {got.hex()}, this network is {want.hex()}")
        self.got = got
        self.want = want


class SignatureError(ProtocolError):
    """A signature does not verify under the author's key."""


class KeyError_(ProtocolError):
    """A malformed key, seed or peer id."""


class CidError(ProtocolError):
    """A malformed CID."""


class BlockMismatchError(CidError):
    """Block bytes whose hash does not match the CID they were stored or fetched under."""

    def __init__(self, cid: str, actual: str) -> None:
        super().__init__(
            f"block does not match its CID: expected {cid}, content hashes to {actual}")
        self.cid = cid
        self.actual = actual


class GenesisError(ProtocolError):
    """An invalid genesis document or parameter set."""


class VoteError(ProtocolError):
    """A vote that breaks the vote rules."""


class NotValidatorError(VoteError):
    """A vote signed by a key outside the validator set."""

    def __init__(self, author: str) -> None:
        super().__init__(f"{author} is not a validator of this network")
        self.author = author


class ConflictingVoteError(VoteError):
    """Two different votes by one validator for one item, round and phase."""

    def __init__(self, a: object, b: object) -> None:
        super().__init__(f"conflicting votes: {a!r} and {b!r}")
        self.a = a
        self.b = b


class CertificateError(ProtocolError):
    """A certificate that does not prove finality under the genesis."""


class TallyError(ProtocolError):
    """An invalid tally or tally vote."""


class AggregationError(ProtocolError):
    """Annotations that cannot be aggregated under the chosen rule."""


class DuplicateAnnotationError(AggregationError):
    """Two annotations by one author for one item were passed to an aggregation rule."""

    def __init__(self, item: bytes, author: bytes) -> None:
        super().__init__(f"author {author.hex()} annotated item {item.hex()} more than once")
        self.item = item
        self.author = author


class MissingTallyError(TallyError):
    """Tallies a task draws reputation from (``weights_from``) that are not final here yet."""

    def __init__(self, tasks: tuple[bytes, ...]) -> None:
        names = ", ".join(t.hex() for t in tasks)
        super().__init__(f"reputation needs final tallies of tasks not final here yet: {names}")
        self.tasks = tasks


class InvalidEvidenceError(VoteError):
    """A pair of vote records offered as evidence that does not prove an equivocation."""
