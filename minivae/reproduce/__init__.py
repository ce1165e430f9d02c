"""``python -m minivae.reproduce``: one command per claim of the papers — run the
experiment (the existing commands, as subprocesses), compare with the paper's value,
and say ``reproduced``, ``differs`` or ``partial`` with the evidence (claim.json).

Modules: claims (the registry), plans (sizes and cost of quick/full), verdict (the
pure decision rules), runner (subprocesses and run folders), sparsity / geco /
twostage / fixedpoints (the experiments), figures, record (claim.json and the
generated table of docs/results.md), run (orchestration).
"""
