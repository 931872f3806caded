"""The shipped dictionary reproduces the hand-written tables it replaced, byte for byte: each arm's encoded
clinical inputs, Table 2 and the lab findings of ``golden_encodings.json`` (made by ``make_golden.py`` on the
code before the dictionary)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dictionary import make_golden

GOLDEN = json.loads(Path(__file__).with_name("golden_encodings.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("arm", sorted(make_golden.SETS))
def test_encoded_inputs_unchanged(arm: str) -> None:
    got = make_golden.encodings()[arm]
    assert got["names"] == GOLDEN["encodings"][arm]["names"]
    assert got["hex"] == GOLDEN["encodings"][arm]["hex"]


def test_table2_unchanged() -> None:
    assert make_golden.table2_csv() == GOLDEN["table2"]


def test_lab_findings_unchanged() -> None:
    assert make_golden.findings() == GOLDEN["findings"]
