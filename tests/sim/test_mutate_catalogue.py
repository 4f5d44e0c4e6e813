"""`make mutate`'s catalogue still fits the code: every mutant's patches apply exactly once.

When the agent is edited so that a mutant's pattern no longer occurs, `make mutate` would report
it NOT APPLIED only when someone runs it (minutes per mutant). This keeps the catalogue from
drifting silently: the patches are applied to a copy of the files they name.
"""

import shutil

import pytest

from otakit.paths import ROOT
from otakit.sim.mutate import CATALOGUE, apply


@pytest.mark.parametrize("mutant", CATALOGUE, ids=lambda m: m.name)
def test_every_mutant_applies_once_and_changes_the_code(mutant, tmp_path):
    for rel in {p[0] for p in mutant.patches}:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    assert apply(mutant, tmp_path) == []
    for rel in {p[0] for p in mutant.patches}:
        assert (tmp_path / rel).read_text() != (ROOT / rel).read_text(), rel
