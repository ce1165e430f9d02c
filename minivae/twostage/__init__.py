"""The two-stage VAE (Dai & Wipf 2019) with Asperti's renormalisation (math.md §4).

* :class:`SecondStageVAE` -- the dense second stage over latent codes;
* :mod:`.renormalise` -- ``scalar`` / ``per-dim`` / ``off`` rescaling of generated codes;
* :func:`generate` -- sampling through one or two stages;
* :func:`load_stage1` / :func:`load_stage2` -- rebuilding a run folder;
* ``python -m minivae.train --stage2 RUN_DIR`` -- training (:mod:`.cli`, :mod:`.training`).
"""
from .model import SecondStageVAE
from .renormalise import RENORM_MODES, LatentMoments, per_dim_renormalise, renormalise, scalar_renormalise
from .run import Stage1Run, Stage2, TwoStageError, has_stage2, load_stage1, load_stage2
from .sampling import generate, stage2_reconstruction

__all__ = ["LatentMoments", "RENORM_MODES", "SecondStageVAE", "Stage1Run", "Stage2", "TwoStageError", "generate",
           "has_stage2", "load_stage1", "load_stage2", "per_dim_renormalise", "renormalise",
           "scalar_renormalise", "stage2_reconstruction"]
