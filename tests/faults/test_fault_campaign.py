"""The seeded fault-injection campaign: one pytest item per seed (see campaign.py).

Each item records a short simulated session (cameras, eye tracker, microphone and notes, 2
trials of 1.5 s) and injects
one fault at a seeded edge of it; a failure names the seed, the fault, the moment and how to
rerun exactly that case. Seeds that once failed live in known_seeds.json with their defect.

    RPI_LOGGER_FAULT_SEED=123456 .venv/bin/python -m pytest tests/faults -k campaign
    RPI_LOGGER_FAULT_CASES=60 .venv/bin/python -m pytest tests/faults -k campaign  # explore more
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.faults.campaign import Case, SeedEntry, check, run_case, selected_seeds

pytestmark = pytest.mark.faults

SEEDS = selected_seeds()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("entry", SEEDS, ids=[s.id for s in SEEDS])
def test_campaign(entry: SeedEntry, tmp_path: Path) -> None:
    case = Case.from_seed(entry.seed, targets=entry.targets)
    verdict = check(run_case(case, tmp_path))
    note = f"\n(known seed, kept for: {entry.note})" if entry.note else ""
    assert not verdict.problems, verdict.report() + note


def test_seeds_are_reproducible() -> None:
    """A seed means the same case everywhere: what a failure message says reruns it."""
    assert Case.from_seed(1234) == Case.from_seed(1234)
    cases = [Case.from_seed(s) for s in range(300)]
    assert {c.fault for c in cases} == set(type(cases[0].fault))
    assert {c.moment for c in cases} == set(type(cases[0].moment))
    targets = {c.module for c in cases if c.fault.on_module}
    assert targets == {"Cameras", "EyeTracker", "Audio", "Notes"}
