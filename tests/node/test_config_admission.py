"""The ``[admission]`` section of config.toml: rendered by ``annot init``, read back,
validated, and its values reach the node's admission control (issue 13)."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from node.core.admission import Verdict
from node.core.config import AdmissionConfig, config_from_toml
from node.core.config_file import render_config
from node.core.home import NodeHome, init_home
from node.core.local import open_node
from node.errors import ConfigError
from protocol import cid as cidlib
from protocol.keys import SigningKey
from protocol.records import Annotation, sign_record

PEER = "12D3KooWsender"


def test_init_renders_every_admission_key_with_its_default() -> None:
    raw = tomllib.loads(render_config())["admission"]
    assert set(raw) == {f.name for f in fields(AdmissionConfig)}
    assert config_from_toml(render_config()).admission == AdmissionConfig()


@pytest.mark.parametrize("text", [
    "[admission]\npending_max = -1",
    "[admission]\npeer_rate = 0",
    "[admission]\nauthor_burst = 0",
    "[admission]\nseq_window = 0",
    "[admission]\npending_max = 1.5",
    "[admission]\nno_such_limit = 3",
])
def test_bad_admission_values_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        config_from_toml(text)


def _home_with(tmp_path: Path, section: str) -> NodeHome:
    init_home(tmp_path / "n", p2p_port=0, rpc_port=0)
    h = NodeHome(tmp_path / "n")
    text = h.config_path.read_text()
    start = text.index("[admission]")
    end = text.index("[log]")
    h.config_path.write_text(text[:start] + section + "\n\n" + text[end:])
    return h


def test_admission_limits_set_in_config_take_effect(tmp_path: Path) -> None:
    h = _home_with(tmp_path, "[admission]\npending_max = 3\nauthor_burst = 2\nseq_window = 5")
    node = open_node(h)
    try:
        assert node.config.admission == AdmissionConfig(pending_max=3, author_burst=2,
                                                        seq_window=5)
        net = node.genesis.network_id
        ghost = cidlib.cid_bytes(b"a task this node has not seen")
        item = cidlib.cid_bytes(b"an item")
        fresh = [sign_record(net, SigningKey(k.to_bytes(4, "big") * 8), 1,
                             Annotation(ghost, item, "cat")) for k in range(1, 11)]
        assert node.ingest.accept(fresh, source=PEER) == [Verdict.PENDING] * 10
        assert node.ingest.admission.pending == 3  # pending_max, not the default 10,000
        one = SigningKey(b"\x77" * 32)
        # seq 7 is past seq_window = 5 of an author with no records: not now
        far = sign_record(net, one, 7, Annotation(ghost, item, "cat"))
        assert node.ingest.accept([far], source=PEER) == [Verdict.LATER]
        # author_burst = 2: the third record of one author in a burst is not taken
        recs = [sign_record(net, one, s, Annotation(ghost, item, "cat")) for s in (1, 2, 3)]
        assert node.ingest.accept(recs, source=PEER) == [Verdict.PENDING, Verdict.PENDING,
                                                         Verdict.LATER]
        assert 'annot_admission_limit{name="pending_max"} 3.0' in node.metrics.render().decode()
    finally:
        node.close()
