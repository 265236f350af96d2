"""Literature search for the operators."""

from __future__ import annotations

import pytest

from aira.errors import UsageError
from aira.tasks.autoresearch.literature import Literature, render


def test_bm25_ranks_the_relevant_passage_first(tmp_path):
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "muon.md").write_text(
        "# Muon\n\nMuon runs SGD with momentum and orthogonalises each update with a Newton-Schulz "
        "iteration.\n\nIt is used for the hidden matrices; embeddings keep AdamW.")
    (tmp_path / "schedules.txt").write_text(
        "Warmdown: hold the learning rate, then decay it linearly to zero over the last part of "
        "training.\n\nA longer warmdown helps short runs.")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")  # not text: ignored
    lit = Literature(tmp_path)
    hits = lit.search("warmdown schedule", k=2)
    assert hits[0].source == "schedules.txt" and "decay it linearly" in hits[0].text
    assert all(h.source != "papers/muon.md" for h in hits)  # shares no word with the query
    top = lit.search("newton schulz orthogonalise momentum", k=1)
    assert [h.source for h in top] == ["papers/muon.md"]
    text = render("newton schulz", top)
    assert text.startswith("Retrieved from the literature for 'newton schulz':\n- [papers/muon.md] # Muon")
    assert render("x", []) == "Retrieved from the literature for 'x': nothing matched."


def test_bad_folders(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        Literature(tmp_path / "missing")
    with pytest.raises(UsageError, match="holds no .txt or .md text"):
        Literature(tmp_path)
