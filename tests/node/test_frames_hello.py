"""The hello frame is built canonical by construction (no recursive re-sort):
it must equal the generic canonical encoding of the same map, byte for byte, and
decode as a hello with the same clock and ``have``."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from node.p2p import frames as fr
from protocol.encoding import encode_canonical

authors = st.binary(min_size=32, max_size=32)
seqs = st.integers(min_value=1, max_value=2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(clock=st.lists(st.tuples(authors, seqs), max_size=20),
       have=st.none() | st.lists(st.tuples(authors, st.lists(seqs, min_size=1, max_size=5)),
                                 max_size=10),
       more=st.booleans(), net=st.binary(min_size=32, max_size=32))
def test_hello_is_canonical(clock: list[tuple[bytes, int]],
                            have: list[tuple[bytes, list[int]]] | None, more: bool,
                            net: bytes) -> None:
    data = fr.encode_hello(net, clock, more, have)
    m: dict[str, Any] = {"clock": [[a, s] for a, s in clock], "more": more, "net": net,
                         "t": "hello"}
    if have is not None:
        m["have"] = [[a, q] for a, q in have]
    assert data == encode_canonical(m)
    frame = fr.decode_frame(data, 512, 1 << 20)
    assert isinstance(frame, fr.Hello)
    assert list(frame.clock) == clock and frame.more == more and frame.network_id == net
    assert [(a, list(q)) for a, q in frame.have] == (have or [])
