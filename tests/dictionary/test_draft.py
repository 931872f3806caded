"""``liver-mm dictionary draft TABLE`` on a foreign lesion table (real subprocess): kinds guessed, categories
counted, ``&`` cells found, missing words collected, identifiers / paths / the label left out; the draft is
refused until its ``draft: true`` line is deleted, and then loads as a dictionary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from liver_mm.dictionary import DictionaryError, load_dictionary

TABLE = """\
lesion_id,Image File,class,Age,Shape,Margin,BI-RADS,Halo
L001,img/1.png,benign,45,oval,circumscribed,3,no
L002,img/2.png,malignant,not available,irregular,not circumscribed - angular&indistinct,4c,yes
L003,img/3.png,benign,52,round,circumscribed,2,no
L004,img/4.png,malignant,67,irregular,not circumscribed - indistinct,5,no
L005,img/5.png,benign,not available,oval,circumscribed,4a,no
L006,img/6.png,malignant,71,irregular,not circumscribed - angular,4b,yes
"""


def test_draft_of_a_foreign_table(tmp_path: Path) -> None:
    (tmp_path / "lesions.csv").write_text(TABLE, encoding="utf-8")
    out = tmp_path / "draft.yaml"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    res = subprocess.run([sys.executable, "-m", "liver_mm.cli", "dictionary", "draft", str(tmp_path / "lesions.csv"),
                          "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    text = out.read_text(encoding="utf-8")
    assert 'missing: ["not available"]' in text
    assert '{kind: continuous, unit: "", plausible: [45, 71], aliases: ["Age"]}' in text
    assert ('{kind: multi, separator: "&", categories: ["circumscribed", "not circumscribed - angular", '
            '"indistinct", "not circumscribed - indistinct"], aliases: ["Margin"]}') in text
    assert '{kind: ordinal, categories: ["2", "3", "4a", "4b", "4c", "5"], aliases: ["BI-RADS"]}' in text
    assert '# 6 values: oval 2, irregular 3, round 1' not in text and "irregular 3, oval 2, round 1" in text
    assert "{kind: binary, categories: [\"no\", \"yes\"], aliases: [\"Halo\"]}" in text
    assert "#   lesion_id: looks like an identifier" in text
    assert "#   Image File: looks like file paths" in text and "#   class: looks like the label" in text
    assert "- {name: clinical, add: [age, shape, margin, bi_rads, halo]}" in text
    with pytest.raises(DictionaryError, match=r"draft: this is a draft written by `liver-mm dictionary draft`"):
        load_dictionary(out)
    out.write_text(text.replace("draft: true\n", ""), encoding="utf-8")
    d = load_dictionary(out)
    assert [d[v].kind for v in d.variables] == ["continuous", "categorical", "multi", "ordinal", "binary"]
    assert d.column_of("BI-RADS") == "bi_rads"
