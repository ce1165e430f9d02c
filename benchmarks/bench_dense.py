"""Time one training step of the dense VAE (784-256-64-32-16 and its mirror, batch 128,
Adam) in minivae and, when installed, in PyTorch -- the same model, loss and data.

    python benchmarks/bench_dense.py [--backend numpy|cupy] [--steps 200] [--threads N]

Prints ms/step, the implied seconds per 60,000-image epoch, and the ratio
minivae / PyTorch (target ≤ 1.0 on the CPU, ≤ 1.5 on a GPU; design.md).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

BATCH, D, HIDDEN, LATENT = 128, 784, (256, 64, 32), 16


def _timed(step, steps, repeats, sync=lambda: None):
    for _ in range(max(steps // 10, 5)):  # warm-up (BLAS threads, allocator)
        step()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - t0) / steps)
    return statistics.median(times)


def minivae_step_time(data, backend_name, steps, repeats):
    from _steps import vae_training_step
    from minivae import backend
    from minivae.optim import Adam
    from minivae.vae import DenseVAE, build_objective

    backend.use(backend_name, dtype="float32", seed=0)
    model = DenseVAE((1, 28, 28), hidden=HIDDEN, latent_dim=LATENT)
    objective = build_objective("balanced")
    opt = Adam(model.parameters(), lr=1e-3)
    batches = [backend.to_device(data[i * BATCH:(i + 1) * BATCH]) for i in range(len(data) // BATCH)]
    eps = [backend.rng().standard_normal((BATCH, LATENT)).astype(numpy.float32) for _ in range(8)]
    step = vae_training_step(model, objective, opt, batches, eps)

    sync = (lambda: backend.xp().cuda.Stream.null.synchronize()) if backend_name == "cupy" else (lambda: None)
    return _timed(step, steps, repeats, sync)


def torch_step_time(data, device, steps, repeats):
    import torch
    from _steps import torch_training_step

    torch.manual_seed(0)

    def mlp(widths, last_act):
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(torch.nn.Linear(a, b))
            if last_act or i < len(widths) - 2:
                layers.append(torch.nn.ReLU())
        return layers

    enc = torch.nn.Sequential(*mlp((D,) + HIDDEN, True)).to(device)
    heads = torch.nn.Linear(HIDDEN[-1], 2 * LATENT).to(device)
    dec = torch.nn.Sequential(*mlp((LATENT,) + HIDDEN[::-1], True), *mlp((HIDDEN[0], D), False)).to(device)
    params = list(enc.parameters()) + list(heads.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    batches = [torch.from_numpy(data[i * BATCH:(i + 1) * BATCH].reshape(BATCH, D)).to(device)
               for i in range(len(data) // BATCH)]
    eps = [torch.randn(BATCH, LATENT, device=device) for _ in range(8)]
    step = torch_training_step(torch, enc, heads, dec, opt, batches, eps)

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    return _timed(step, steps, repeats, sync)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="numpy", choices=("numpy", "cupy"))
    parser.add_argument("--steps", type=int, default=200, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (the median is reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch CPU threads")
    args = parser.parse_args()

    data = numpy.random.default_rng(0).random((BATCH * 16, 1, 28, 28), dtype=numpy.float32)
    ours = minivae_step_time(data, args.backend, args.steps, args.repeats)
    print(f"minivae ({args.backend}): {ours * 1e3:.3f} ms/step  -> {ours * 60000 / BATCH:.2f} s per 60k-image epoch")
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: no reference ratio (pip install torch==2.13.0)")
        return
    torch.set_num_threads(args.threads)
    device = "cuda" if args.backend == "cupy" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        print(f"PyTorch {torch.__version__} has no CUDA here: no reference ratio")
        return
    theirs = torch_step_time(data, device, args.steps, args.repeats)
    print(f"PyTorch {torch.__version__} ({device}, {torch.get_num_threads()} threads): {theirs * 1e3:.3f} ms/step"
          f"  -> {theirs * 60000 / BATCH:.2f} s per 60k-image epoch")
    print(f"ratio minivae / PyTorch = {ours / theirs:.2f}  (target <= {1.0 if device == 'cpu' else 1.5})")


if __name__ == "__main__":
    main()
