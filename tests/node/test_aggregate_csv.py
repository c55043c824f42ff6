"""``node.cli.aggregate_csv.aggregate``: CSV in, one label per item out, line-numbered errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.cli.aggregate_csv import CsvAggregateError, Duplicate, aggregate, aggregate_file
from node.errors import NodeError

CROWD = Path(__file__).resolve().parents[1] / "data" / "crowd"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_majority_and_dawid_skene(tmp_path: Path) -> None:
    path = write(tmp_path, "item,worker,label\nb,w1,dog\na,w1,cat\na,w2,cat\nb,w2,dog\n"
                           "a,w3,dog\n\n")
    assert aggregate("majority", path) == [("b", "dog"), ("a", "cat")]
    assert aggregate("dawid-skene", path) == [("b", "dog"), ("a", "cat")]


def test_crowd_headers_are_accepted_by_position() -> None:
    out = aggregate("majority", CROWD / "d_sentiment" / "answer.csv")
    assert len(out) == 1000 and {label for _, label in out} == {"0", "1"}
    out = aggregate("dawid-skene", CROWD / "d_Duck_Identification" / "answer.csv")
    assert len(out) == 108


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("", 0, "empty file"),
    ("a,b\n", 1, "header"),
    ("item,worker,label\n", 0, "no annotations"),
    ("item,worker,label\nx,w,1\nx,w\n", 3, "3 columns"),
    ("item,worker,label\nx,w,1\ny,,1\n", 3, "empty"),
    ("item,worker,label\nx,w,EXPIRED\n", 0, "reserved"),
])
def test_malformed_files_name_the_line(tmp_path: Path, text: str, line: int,
                                       reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CsvAggregateError, match=reason) as err:
        aggregate("majority", path)
    assert err.value.line == line
    assert isinstance(err.value, NodeError)
    if line:
        assert f"{path}:{line}:" in str(err.value)


@pytest.mark.parametrize("rule", ["majority", "dawid-skene"])
def test_duplicates_first_answer_wins_and_is_reported(tmp_path: Path, rule: str) -> None:
    """As on the network: a worker's later answers to an item are dropped, the first counts."""
    path = write(tmp_path, "item,worker,label\na,w1,cat\na,w2,dog\na,w1,dog\nb,w1,dog\n"
                           "a,w3,cat\na,w1,dog\nb,w2,dog\n")
    got = aggregate_file(rule, path)
    assert got.labels == [("a", "cat"), ("b", "dog")]  # with w1's later "dog": a tie
    assert got.dropped == 2
    assert got.duplicates == [Duplicate(4, 2, "a", "w1"), Duplicate(7, 2, "a", "w1")]
    assert "dropped 2 duplicate answer(s)" in got.summary()
    assert "line 4 repeats worker 'w1' on item 'a' from line 2 and 1 more" in got.summary()
    assert aggregate(rule, path) == got.labels
    clean = write(tmp_path, "item,worker,label\na,w1,cat\n")
    assert aggregate_file(rule, clean).dropped == 0 and aggregate_file(rule, clean).summary() == ""


def test_unknown_rule_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CsvAggregateError, match="unknown rule"):
        aggregate("median", write(tmp_path, "item,worker,label\nx,w,1\n"))
    with pytest.raises(CsvAggregateError, match="cannot read"):
        aggregate("majority", tmp_path / "nope.csv")
