"""A draft lists each category in its most frequent spelling: an export whose first ``oval`` cell was typed
``Oval`` still drafts ``oval`` (the count covers every spelling; categories compare in any case)."""

from __future__ import annotations

import pandas as pd

from liver_mm.io.draft import draft_dictionary


def test_draft_keeps_the_most_frequent_spelling() -> None:
    table = pd.DataFrame({"Shape": ["Oval", "oval", "oval", " round ", "round", "irregular", "IRREGULAR",
                                    "irregular"]})
    text = draft_dictionary(table)
    assert "  shape:   # 8 values: oval 3, irregular 3, round 2" in text
    assert '{kind: categorical, categories: ["oval", "irregular", "round"], aliases: ["Shape"]}' in text
