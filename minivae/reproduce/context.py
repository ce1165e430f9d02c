"""What every experiment of ``python -m minivae.reproduce`` is given: the runner (the
subprocesses), the mode's plan, the seeds, the data flags and a cache of the
summaries already read in this process (so ``all`` reads each run folder once)."""
from __future__ import annotations

import dataclasses

from .runner import Runner


@dataclasses.dataclass
class Context:
    runner: Runner
    mode: str
    plan: dict
    seeds: list
    data_args: list  # ["--dataset", NAME] (+ ["--data-dir", DIR])
    dataset: str
    out: str
    cache: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)
