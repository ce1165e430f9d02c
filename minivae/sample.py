"""``python -m minivae.sample RUN_DIR``: draw images from a trained run (math.md §4).

From the prior of stage 1 (z ~ N(0, I) → decoder₁), or through the second stage
(u ~ N(0, I) → decoder₂ → [γ_z noise] → renormalisation → decoder₁). Writes a PNG
grid and, with ``--npy``, the samples as an (N, C, H, W) float32 array. The same
``--seed`` gives the same samples.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy

from .imageio import atomic_write_bytes, save_grid
from .twostage.renormalise import RENORM_MODES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minivae.sample", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by python -m minivae.train")
    p.add_argument("--n", type=int, default=100, help="number of samples [default: 100]")
    p.add_argument("--stage", choices=("auto", "1", "2"), default="auto",
                   help="1: the prior of stage 1; 2: through the second stage; auto: 2 when the run has one "
                        "[default: auto]")
    p.add_argument("--renorm", choices=RENORM_MODES, default="off",
                   help="renormalisation of stage-2 codes before decoding: scalar (Asperti's, one factor per "
                        "batch, applied only when the latent variance loss exceeds 0.25 x the stage-2 MSE), "
                        "per-dim (standardise each dimension to the stage-1 aggregate posterior), off "
                        "[default: off]")
    p.add_argument("--gamma-noise", action="store_true",
                   help="add N(0, γ_z I) noise to the stage-2 codes (Dai & Wipf; Asperti does not)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draws [default: 0]")
    p.add_argument("--batch-size", type=int, default=1000,
                   help="generation batch; renormalisation uses each batch's statistics [default: 1000]")
    p.add_argument("--out", help="PNG path [default: RUN_DIR/samples-stage<S>-<renorm>.png]")
    p.add_argument("--npy", nargs="?", const="", default=None, metavar="PATH",
                   help="also save the samples as .npy (PATH, or next to the PNG when given without a value)")
    p.add_argument("--nrow", type=int, default=None, help="images per grid row [default: about sqrt(n)]")
    p.add_argument("--backend", choices=("numpy", "cupy"), help="override the run's backend")
    return p


def sample_run(run_dir, n=100, stage="auto", renorm="off", gamma_noise=False, seed=0, batch_size=1000,
               backend_name=None):
    """(images, stage used) from ``run_dir``; see :func:`minivae.twostage.generate`."""
    from .twostage import generate, has_stage2, load_stage1, load_stage2  # noqa: PLC0415
    stage1 = load_stage1(run_dir, backend_name)
    if stage == "auto":
        stage = "2" if has_stage2(run_dir) else "1"
    if stage == "1" and (renorm != "off" or gamma_noise):
        raise ValueError("--renorm and --gamma-noise apply to samples through the second stage (--stage 2)")
    stage2 = load_stage2(stage1) if stage == "2" else None
    if batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {batch_size}")
    images = generate(stage1.model, n, stage2=stage2, renorm=renorm, gamma_noise=gamma_noise, seed=seed,
                      batch_size=batch_size)
    return images, stage


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError  # noqa: PLC0415
    from .backend import BackendError  # noqa: PLC0415
    try:
        if args.n < 1:
            raise ValueError(f"--n must be a positive number of samples, got {args.n}")
        images, stage = sample_run(args.run_dir, args.n, args.stage, args.renorm, args.gamma_noise, args.seed,
                                   args.batch_size, args.backend)
        name = f"samples-stage{stage}" + (f"-{args.renorm}" if stage == "2" else "") + \
            ("-noise" if args.gamma_noise else "")
        png = args.out or os.path.join(args.run_dir, name + ".png")
        save_grid(png, numpy.clip(images, 0.0, 1.0), nrow=args.nrow)
        written = [png]
        if args.npy is not None:
            npy = args.npy or os.path.splitext(png)[0] + ".npy"
            import io  # noqa: PLC0415
            buf = io.BytesIO()
            numpy.save(buf, images, allow_pickle=False)
            atomic_write_bytes(npy, buf.getvalue())
            written.append(npy)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, CheckpointError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(images)} samples (stage {stage}" + (f", renorm {args.renorm}" if stage == "2" else "") +
          f", seed {args.seed}) -> " + ", ".join(written), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
