"""``python -m minivae.sample RUN_DIR``: draw images from a trained run (math.md §4).

From the prior of stage 1 (z ~ N(0, I) → decoder₁), or through the second stage
(u ~ N(0, I) → decoder₂ → [γ_z noise] → renormalisation → decoder₁). Writes a PNG
grid and, with ``--npy``, the samples as an (N, C, H, W) float32 array. The same
``--seed`` gives the same samples.
"""
from __future__ import annotations

import io
import os
import sys

import numpy

from .fileio import atomic_write_bytes
from .imageio import save_grid
from .run.cli import CommandParser, command_main, common_flags, log, positive_int
from .run.folder import check_output_path
from .twostage.renormalise import RENORM_MODES

MAX_SAMPLE_BYTES = 2 << 30   # one call holds its samples in memory: 2 GiB at most


def build_parser():
    p = CommandParser(prog="python -m minivae.sample", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by python -m minivae.train")
    p.add_argument("--n", type=positive_int, default=100,
                   help=f"number of samples (their float32 images must fit {MAX_SAMPLE_BYTES >> 30} GiB) "
                        "[default: 100]")
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
    p.add_argument("--batch-size", type=positive_int, default=1000,
                   help="generation batch; renormalisation uses each batch's statistics [default: 1000]")
    p.add_argument("--out", help="PNG path [default: RUN_DIR/samples-stage<S>-<renorm>.png]")
    p.add_argument("--npy", nargs="?", const="", default=None, metavar="PATH",
                   help="also save the samples as .npy (PATH, or next to the PNG when given without a value)")
    p.add_argument("--nrow", type=positive_int, default=None, help="images per grid row [default: about sqrt(n)]")
    common_flags(p, data_dir=False, seed_help="random seed of the draws")
    return p


def sample_run(run_dir, n=100, stage="auto", renorm="off", gamma_noise=False, seed=0, batch_size=1000,
               backend_name=None):
    """(images, stage used) from ``run_dir``; see :func:`minivae.twostage.generate`."""
    from .run.load import has_stage2, load_run, load_stage2  # noqa: PLC0415
    from .twostage import generate  # noqa: PLC0415
    stage1 = load_run(run_dir, backend_name)
    need = n * int(numpy.prod(stage1.input_shape)) * 4
    if need > MAX_SAMPLE_BYTES:
        most = MAX_SAMPLE_BYTES // (int(numpy.prod(stage1.input_shape)) * 4)
        raise ValueError(f"--n {n} asks for {need / 2**30:.1f} GiB of images; one call holds at most {most} "
                         f"samples of shape {tuple(stage1.input_shape)} ({MAX_SAMPLE_BYTES >> 30} GiB): call it "
                         "again with other --seed values")
    if stage == "auto":
        stage = "2" if has_stage2(run_dir) else "1"
    if stage == "1" and (renorm != "off" or gamma_noise):
        raise ValueError("--renorm and --gamma-noise apply to samples through the second stage (--stage 2)")
    stage2 = load_stage2(stage1) if stage == "2" else None
    images = generate(stage1.model, n, stage2=stage2, renorm=renorm, gamma_noise=gamma_noise, seed=seed,
                      batch_size=batch_size)
    return images, stage


def _file_target(path, what):
    """Refuse a target that is a folder or lies in a folder that does not exist -- before any work."""
    if os.path.isdir(path):
        raise ValueError(f"{what} {path!r} is a folder; give a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{what} {path!r}: the folder {folder!r} does not exist")
    return path


def sample(args) -> int:
    if not os.path.isdir(args.run_dir):
        check_output_path(args.run_dir, "RUN_DIR")
    png = _file_target(args.out, "--out") if args.out else None
    npy = _file_target(args.npy, "--npy") if args.npy else None
    images, stage = sample_run(args.run_dir, args.n, args.stage, args.renorm, args.gamma_noise, args.seed,
                               args.batch_size, args.backend)
    if png is None:
        name = f"samples-stage{stage}" + (f"-{args.renorm}" if stage == "2" else "") + \
            ("-noise" if args.gamma_noise else "")
        png = os.path.join(args.run_dir, name + ".png")
    if args.npy is not None and npy is None:
        npy = os.path.splitext(png)[0] + ".npy"
    save_grid(png, numpy.clip(images, 0.0, 1.0), nrow=args.nrow)
    written = [png]
    if npy is not None:
        buf = io.BytesIO()
        numpy.save(buf, images, allow_pickle=False)
        atomic_write_bytes(npy, buf.getvalue())
        written.append(npy)
    log(f"{len(images)} samples (stage {stage}" + (f", renorm {args.renorm}" if stage == "2" else "") +
        f", seed {args.seed}) -> " + ", ".join(written))
    return 0


def main(argv=None) -> int:
    return command_main(build_parser, sample, argv)


if __name__ == "__main__":
    sys.exit(main())
