"""The mutation catalogue is well formed (the suite itself runs outside CI: python -m tests.mutation).

Anchors are not checked here: a refactor elsewhere may make a mutant stale, which the
runner reports; CI must not fail for it."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)   # tests.mutation is a package of the repository, not of minivae

from tests.mutation.catalogue import MUTANTS  # noqa: E402
from tests.mutation.run import find_anchor, module_of  # noqa: E402


def test_at_least_60_distinct_mutants_over_every_module():
    assert len(MUTANTS) >= 60
    assert len({m.id for m in MUTANTS}) == len(MUTANTS)
    modules = {module_of(m) for m in MUTANTS}
    assert modules >= {"backend", "autograd", "ops", "nn", "optim", "checkpoint", "data", "vae.distributions",
                       "vae.objectives", "vae.geco", "vae.constraints", "vae.diagnostics", "vae.metrics",
                       "twostage", "fixedpoint"}


def test_each_mutant_changes_its_line_names_its_equation_and_runs_existing_tests():
    for m in MUTANTS:
        assert m.find.strip() == m.find and m.replace.strip() == m.replace and m.find != m.replace, m.id
        assert m.breaks and m.tests, m.id
        for t in m.tests:
            assert os.path.isfile(os.path.join(ROOT, t)), (m.id, t)


def test_anchors_match_whole_stripped_lines():
    lines = ["    a = 1", "        a = 1", "b = a + 1  # note"]
    assert find_anchor(lines, "a = 1") == [0, 1]           # two hits: the runner calls that stale
    assert find_anchor(lines, "b = a + 1") == []            # a prefix is not the line
    assert find_anchor(lines, "b = a + 1  # note") == [2]
