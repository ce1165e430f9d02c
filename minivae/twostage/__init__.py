"""The two-stage VAE (Dai & Wipf 2019) with Asperti's renormalisation (math.md §4).

* :class:`SecondStageVAE` -- the dense second stage over latent codes;
* :mod:`.renormalise` -- ``scalar`` / ``per-dim`` / ``off`` rescaling of generated codes;
* :func:`generate` -- sampling through one or two stages.

Training the second stage and loading it from a run folder is the run layer's
(:mod:`minivae.run.stage2`, :func:`minivae.run.load_stage2`;
``python -m minivae.train --stage2 RUN_DIR``).
"""
from .model import SecondStageVAE
from .renormalise import RENORM_MODES, LatentMoments, per_dim_renormalise, renormalise, scalar_renormalise
from .sampling import generate, stage2_reconstruction

__all__ = ["LatentMoments", "RENORM_MODES", "SecondStageVAE", "generate", "per_dim_renormalise", "renormalise",
           "scalar_renormalise", "stage2_reconstruction"]
