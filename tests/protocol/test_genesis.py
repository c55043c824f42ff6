"""Genesis: JSON round trip, network id stability, validation, quorum arithmetic."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import GenesisError
from protocol.genesis import Genesis, Params, Validator, genesis_from_json, genesis_from_map
from protocol.keys import SigningKey

PIDS = [SigningKey(bytes([i]) * 32).peer_id for i in range(1, 8)]


def make(weights: tuple[int, ...] = (1, 1, 1), **kw: Any) -> Genesis:
    g = Genesis(name=kw.pop("name", "testnet"),
                validators=tuple(Validator(p, w) for p, w in zip(PIDS, weights, strict=False)),
                **kw)
    g.validate()
    return g


def base_map() -> dict[str, Any]:
    return json.loads(make().to_json())


# ------------------------------------------------------------------ round trip and id

def test_json_round_trip() -> None:
    g = make((1, 2, 3), genesis_time=1_700_000_000,
             params=Params(quorum_num=3, quorum_den=4, round_timeout_ms=500))
    back = genesis_from_json(g.to_json())
    assert back == g
    assert back.network_id == g.network_id
    assert back.to_json() == g.to_json()


def test_network_id_ignores_json_layout() -> None:
    g = make((5, 7))
    m = json.loads(g.to_json())
    compact = json.dumps(m, separators=(",", ":"))
    shuffled = json.dumps(dict(reversed(list(m.items()))), indent=7)
    assert genesis_from_json(compact).network_id == g.network_id
    assert genesis_from_json(shuffled).network_id == g.network_id


def test_network_id_is_stable_and_32_bytes() -> None:
    a, b = make(), make()
    assert a.network_id == b.network_id and len(a.network_id) == 32
    assert a.topic() == f"/annot/{a.network_id.hex()}/records/1"


@pytest.mark.parametrize("change", [
    {"name": "testnet2"},
    {"genesis_time": 1},
    {"params": Params(round_timeout_ms=2_001)},
    {"params": Params(quorum_num=3, quorum_den=4)},
    {"validators": (Validator(PIDS[0], 1), Validator(PIDS[1], 1), Validator(PIDS[2], 2))},
    {"validators": (Validator(PIDS[0], 1), Validator(PIDS[1], 1))},
], ids=["name", "time", "params", "quorum", "weight", "validators"])
def test_every_field_changes_the_network_id(change: dict[str, Any]) -> None:
    g = make()
    assert replace(g, **change).network_id != g.network_id


def test_defaults_fill_in_missing_optional_fields() -> None:
    g = genesis_from_map({"name": "n", "validators": [{"peer_id": PIDS[0], "weight": 1}]})
    assert g.params == Params() and g.genesis_time == 0
    assert genesis_from_map({"name": "n", "validators": [{"peer_id": PIDS[0]}]}
                            ).validators[0].weight == 1


def test_weights_and_total() -> None:
    g = make((1, 2, 3))
    assert g.total_weight == 6
    assert g.weights() == {SigningKey(bytes([i + 1]) * 32).public_key: i + 1 for i in range(3)}


def test_limits_follow_params() -> None:
    lim = Params(max_record_bytes=4096, max_items_per_task=10, max_vote_entries=20,
                 max_batch_records=5).limits()
    assert (lim.max_bytes, lim.max_array, lim.max_str, lim.max_bin) == (4096, 20, 4096, 4096)


# ------------------------------------------------------------------ validation

def _with(**changes: Any) -> dict[str, Any]:
    m = base_map()
    m.update(changes)
    return m


def _params(**p: Any) -> dict[str, Any]:
    return _with(params=p)


def _vals(*vals: Any) -> dict[str, Any]:
    return _with(validators=list(vals))


BAD: dict[str, Any] = {
    "bad-peer-id": _vals({"peer_id": "12D3KooWnotapeerid", "weight": 1}),
    "rsa-peer-id": _vals({"peer_id": "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
                          "weight": 1}),
    "peer-id-not-str": _vals({"peer_id": 5, "weight": 1}),
    "zero-weight": _vals({"peer_id": PIDS[0], "weight": 0}),
    "negative-weight": _vals({"peer_id": PIDS[0], "weight": -1}),
    "huge-weight": _vals({"peer_id": PIDS[0], "weight": 10**12 + 1}),
    "float-weight": _vals({"peer_id": PIDS[0], "weight": 1.0}),
    "bool-weight": _vals({"peer_id": PIDS[0], "weight": True}),
    "str-weight": _vals({"peer_id": PIDS[0], "weight": "1"}),
    "duplicate": _vals({"peer_id": PIDS[0], "weight": 1}, {"peer_id": PIDS[0], "weight": 2}),
    "duplicate-with-whitespace": _vals({"peer_id": PIDS[0], "weight": 1},
                                       {"peer_id": PIDS[0] + " ", "weight": 2}),
    "no-validators": _vals(),
    "validators-not-list": _with(validators={"peer_id": PIDS[0]}),
    "validator-not-object": _vals(PIDS[0]),
    "validator-missing-peer-id": _vals({"weight": 1}),
    "validator-unknown-field": _vals({"peer_id": PIDS[0], "weight": 1, "power": 10}),
    "validator-typo-weight": _vals({"peer_id": PIDS[0], "wieght": 10}),
    "quorum-below-2/3": _params(quorum_num=3, quorum_den=5),
    "quorum-1/2": _params(quorum_num=1, quorum_den=2),
    "quorum-just-below-2/3": _params(quorum_num=666, quorum_den=1000),
    "quorum-equal-1": _params(quorum_num=3, quorum_den=3),
    "quorum-above-1": _params(quorum_num=4, quorum_den=3),
    "quorum-zero": _params(quorum_num=0, quorum_den=3),
    "quorum-negative": _params(quorum_num=-2, quorum_den=-3),
    "quorum-str": _params(quorum_num="2"),
    "quorum-null": _params(quorum_den=None),
    "quorum-float": _params(quorum_num=2.0, quorum_den=3),
    "param-zero": _params(max_batch_records=0),
    "param-bool": _params(max_batch_records=True),
    "record-bytes-small": _params(max_record_bytes=1023),
    "unknown-param": _params(max_widgets=3),
    "params-not-object": _with(params=[1, 2]),
    "unknown-field": _with(chain_id="x"),
    "empty-name": _with(name=""),
    "long-name": _with(name="x" * 129),
    "name-not-str": _with(name=5),
    "name-list": _with(name=["x"]),
    "name-missing": {k: v for k, v in base_map().items() if k != "name"},
    "time-str": _with(genesis_time="0"),
    "time-float": _with(genesis_time=0.5),
    "time-bool": _with(genesis_time=False),
    "not-an-object": [1],
    "null": None,
}


@pytest.mark.parametrize("m", list(BAD.values()), ids=list(BAD))
def test_invalid_genesis_is_a_genesis_error(m: Any) -> None:
    with pytest.raises(GenesisError) as info:
        genesis_from_map(m)
    assert str(info.value)


@pytest.mark.parametrize("text", ["", "{", "nul", "[1,", "{\"name\": NaN}"])
def test_invalid_json(text: str) -> None:
    with pytest.raises(GenesisError):
        genesis_from_json(text)


def test_errors_name_the_problem() -> None:
    with pytest.raises(GenesisError, match="unknown params: max_widgets"):
        genesis_from_map(_params(max_widgets=3))
    with pytest.raises(GenesisError, match="listed twice"):
        genesis_from_map(BAD["duplicate"])
    with pytest.raises(GenesisError, match="2/3"):
        genesis_from_map(BAD["quorum-below-2/3"])
    with pytest.raises(GenesisError, match="12D3KooWnotapeerid"):
        genesis_from_map(BAD["bad-peer-id"])


@pytest.mark.parametrize(("num", "den"), [(2, 3), (7, 10), (3, 4), (200, 300), (999, 1000)])
def test_bft_quorums_are_accepted(num: int, den: int) -> None:
    Params(quorum_num=num, quorum_den=den).validate()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=10) | st.sampled_from(PIDS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["peer_id", "weight", "quorum_num", "quorum_den", "x"]), inner,
        max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["name", "validators", "params", "genesis_time", "x"]),
                       json_values, max_size=5))
def test_any_json_object_is_a_genesis_or_a_genesis_error(m: dict[str, Any]) -> None:
    try:
        g = genesis_from_map(m)
    except GenesisError:
        return
    assert genesis_from_json(g.to_json()) == g


# ------------------------------------------------------------------ quorum arithmetic

@pytest.mark.parametrize(("weights", "threshold"), [
    ((1,), 1),            # one validator: it alone is > 2/3
    ((1, 1), 2),          # 2 of 2 (1 of 2 is only 1/2)
    ((1, 1, 1), 3),       # 2 of 3 is exactly 2/3: not more
    ((1, 1, 1, 1), 3),    # 3 of 4
    ((1,) * 7, 5),        # 5 of 7 (4.67 needed)
    ((10, 10, 10, 3), 23),  # total 33: 22 is exactly 2/3
    ((34, 33, 33), 67),   # total 100: 67 > 66.67
])
def test_quorum_boundaries(weights: tuple[int, ...], threshold: int) -> None:
    g = make(weights)
    assert not g.quorum(threshold - 1)
    assert g.quorum(threshold)
    assert g.quorum(g.total_weight)
    assert not g.quorum(0)


def test_quorum_with_another_fraction() -> None:
    g = make((1, 1, 1, 1), params=Params(quorum_num=3, quorum_den=4))
    assert not g.quorum(3) and g.quorum(4)


def test_quorum_is_exact_for_huge_weights() -> None:
    """Integer arithmetic: a float would round 2/3 of 3*10^12 - 1 the wrong way."""
    g = make((10**12, 10**12, 10**12 - 1))
    total = 3 * 10**12 - 1
    assert g.total_weight == total
    assert g.quorum(2 * 10**12)            # 3 * 2e12 = 6e12 > 2 * total = 6e12 - 2
    assert not g.quorum(2 * 10**12 - 1)    # 6e12 - 3 < 6e12 - 2


@given(st.lists(st.integers(1, 10**12), min_size=1, max_size=7), st.integers(0, 7 * 10**12),
       st.sampled_from([(2, 3), (3, 4), (7, 10), (99, 100)]))
def test_quorum_is_more_than_the_fraction(weights: list[int], w: int,
                                          frac: tuple[int, int]) -> None:
    num, den = frac
    g = make(tuple(weights), params=Params(quorum_num=num, quorum_den=den))
    total = sum(weights)
    assert g.quorum(w) == (w * den > total * num)
    # two quorums always overlap in more than 1/3 of the weight (BFT intersection)
    if g.quorum(w) and w <= total:
        assert 3 * (2 * w - total) > total
