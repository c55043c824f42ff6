"""Genesis limits checked before a record is signed (and before anything is uploaded).

Every node decodes records under the genesis limits (:meth:`Params.limits`); a
record over them is refused by every peer, after it was signed and its items
uploaded. :func:`check_body` applies the same rules to an unsigned body — the
decoder's field rules, the array and item-count limits and the exact size the
signed record will have — and raises :class:`LimitError` naming the limit, the
value and what to do instead.
"""

from __future__ import annotations

from protocol.encoding import encode_canonical
from protocol.errors import TooLargeError
from protocol.genesis import Params
from protocol.records import (
    NET_TAG_LEN,
    Body,
    Task,
    Vote,
    body_from_map,
    body_to_map,
    encode_roundtrip,
)

_MAX_SEQ = 2**63 - 1  # the largest seq: its encoding is the longest a record can have


class LimitError(TooLargeError):
    """A body over a genesis limit; the message says which and what to do."""

    def __init__(self, what: str, size: int, limit: int, advice: str) -> None:
        super().__init__(what, size, limit)
        self.args = (f"{what} is {size:,}, over the genesis limit of {limit:,}; {advice}",)
        self.advice = advice


def record_size(body: Body) -> int:
    """The exact byte size of ``body`` signed as a record (at the longest seq)."""
    return len(encode_canonical({
        "a": bytes(32), "b": body_to_map(body), "k": body.KIND, "n": bytes(NET_TAG_LEN),
        "s": _MAX_SEQ, "x": bytes(64)}))


def check_body(body: Body, params: Params) -> None:
    """Raise ``LimitError`` (or the decoder's ``FieldTypeError``) if a node would refuse
    ``body`` signed as a record under ``params``."""
    limits = params.limits()
    if isinstance(body, Task):
        if len(body.items) > params.max_items_per_task:
            raise LimitError("max_items_per_task: the task lists items inline, and their "
                             "number", len(body.items), params.max_items_per_task,
                             "give the items as a folder (--items-dir DIR: a UnixFS "
                             f"directory, up to {params.max_dir_items:,} items in a small "
                             "record)")
        if body.item_count > params.max_dir_items:
            raise LimitError("max_dir_items: the files in the task's folder",
                             body.item_count, params.max_dir_items,
                             "split the folder into several tasks")
        for name, n in (("allow", len(body.allow)), ("labels", len(body.labels))):
            if n > limits.max_array:
                raise LimitError(f"the task's {name} list length", n, limits.max_array,
                                 f"shorten --{name[:-1] if name == 'labels' else name}")
    if isinstance(body, Vote) and len(body.entries) > params.max_vote_entries:
        raise LimitError("max_vote_entries: the vote's entries", len(body.entries),
                         params.max_vote_entries, "split it into several votes")
    # the decoder's own field rules, under this network's array limit (FieldTypeError)
    body_from_map(body.KIND, encode_roundtrip(body_to_map(body)), limits.max_array)
    size = record_size(body)
    if size > params.max_record_bytes:
        advice = ("give the items as a folder (--items-dir DIR), which keeps the record "
                  "small whatever the item count" if isinstance(body, Task) and body.items
                  else "shorten its text fields or lists")
        raise LimitError(f"max_record_bytes: the signed {body.KIND} record's size in bytes",
                         size, params.max_record_bytes, advice)
