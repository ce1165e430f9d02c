"""The run layer: everything about a run folder, below the commands and above the models.

* :mod:`.config` -- typed, sectioned configuration (flags and files by one code path);
* :mod:`.folder` -- the folder's files, its writer lock, atomic JSON;
* :mod:`.build` -- data, model, objective and provenance from a configuration;
* :mod:`.training` / :mod:`.stage2` -- the training loops that write a run;
* :mod:`.load` -- :func:`load_run` (stage 1) and :func:`load_stage2`;
* :mod:`.cli` -- what every command shares (one-line errors, exit codes, common flags).
"""
from .build import build_model, build_objective, load_data, use_backend
from .config import ConfigError, RunConfig, resolve
from .folder import RunFolder, RunFolderError
from .load import Run, RunLoadError, Stage2, has_stage2, load_run, load_stage2
from .training import Trainer, TrainingError

__all__ = ["ConfigError", "Run", "RunConfig", "RunFolder", "RunFolderError", "RunLoadError", "Stage2", "Trainer",
           "TrainingError", "build_model", "build_objective", "has_stage2", "load_data", "load_run",
           "load_stage2", "resolve", "use_backend"]
