"""Training throughput of moastack's trainer vs the public MoA notebooks' DataLoader loop (CPU).

Both train the same SimpleNN module (3-FC, BN → Dropout → Linear → ReLU) from the same initial
weights on lish-moa-width random data with the same batch size, Adam, OneCycleLR and label smoothing:

  (a) trainer   moastack.models.trainer.fit_module: fold on the device once, one randperm + gather per
                epoch, contiguous batch views, fused Adam, loss summed on the device, no per-batch sync.
  (b) notebook  the public notebooks' loop: a Dataset whose __getitem__ builds two tensors from numpy
                rows, default collate, DataLoader(batch_size, shuffle=True), default Adam, OneCycleLR,
                smoothing inside the loss, loss.item() every batch.
  (b') notebook with the notebooks' own nn.Dropout layers instead of SimpleNN's FastDropout
                (informational: shows what the CPU dropout mask costs).

FLOP count of one training step (forward + backward): 6 · B · Σ_layers in·out (2 for the forward GEMM,
2 for the input gradient, 2 for the weight gradient). All three GEMMs really run for every layer: the
first Linear's input gradient is needed too, because the input BatchNorm has trainable parameters.
Element-wise work (BN, dropout, ReLU, Adam) is not counted. The matmul peak is measured in the same run
with torch.mm on exactly these GEMMs (per layer: (B×in)@(in×out), (B×out)@(out×in), (out×B)@(B×in)),
contiguous operands, same thread count: "mm mix" = their total FLOPs / their total time (best of many
short runs), "best shape" = the fastest of them alone.

Each method is timed per epoch over --repeats interleaved runs of --epochs epochs; samples/s come from
the fastest epoch (the least disturbed one: 2-thread OpenMP GEMMs slow down several-fold whenever
another process takes a core) and the median epoch is shown beside it. Set-up outside the epochs
(tensor creation, optimizer) is excluded for both; it is well under 1% of an epoch for either.

    PYTHONPATH=src .venv/bin/python benchmarks/train_speed.py [--rows 20000 --epochs 2 --hidden 2048 256]
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import torch
from torch import nn

from moastack.models.base import FitContext
from moastack.models.losses import SmoothBCEWithLogits
from moastack.models.simple_nn import FastDropout, SimpleNN
from moastack.models.trainer import TrainConfig, fit_module, set_threads

SMOOTHING = 1e-3


# --------------------------------------------------------------------------- (b) the notebooks' loop


class MoADataset:
    """As in the public MoA notebooks: one pair of tensors built per sample."""

    def __init__(self, features: np.ndarray, targets: np.ndarray) -> None:
        self.features = features
        self.targets = targets

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        return {
            "x": torch.tensor(self.features[idx, :], dtype=torch.float),
            "y": torch.tensor(self.targets[idx, :], dtype=torch.float),
        }


def notebook_train_fn(model, optimizer, scheduler, loss_fn, dataloader, device) -> float:
    """The notebooks' train_fn, verbatim apart from names."""
    model.train()
    final_loss = 0.0
    for data in dataloader:
        optimizer.zero_grad()
        inputs, targets = data["x"].to(device), data["y"].to(device)
        outputs = model(inputs)
        loss = loss_fn(outputs, targets)
        loss.backward()
        optimizer.step()
        scheduler.step()
        final_loss += loss.item()
    return final_loss / len(dataloader)


def run_notebook(
    module: nn.Module, X: np.ndarray, Y: np.ndarray, epochs: int, batch_size: int
) -> list[float]:
    """Seconds per epoch to train ``module`` with the notebooks' loop."""
    loader = torch.utils.data.DataLoader(MoADataset(X, Y), batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(module.parameters(), lr=5e-4, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer=optimizer, pct_start=0.1, div_factor=1e3, max_lr=1e-2, epochs=epochs,
        steps_per_epoch=len(loader),
    )
    loss_fn = SmoothBCEWithLogits(SMOOTHING)  # the notebooks' SmoothBCEwLogits smoothed per batch too
    seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        notebook_train_fn(module, optimizer, scheduler, loss_fn, loader, "cpu")
        seconds.append(time.perf_counter() - t0)
    return seconds


# --------------------------------------------------------------------------- (a) the trainer


def run_trainer(module: nn.Module, X: np.ndarray, Y: np.ndarray, epochs: int, batch_size: int,
                threads: int) -> list[float]:
    """Seconds per epoch of fit_module on the same work (no validation set: training throughput only)."""
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, patience=None, label_smoothing=SMOOTHING)
    ctx = FitContext(seed=0, device="cpu", threads=threads, logger=logging.getLogger("bench"))
    return [record["seconds"] for record in fit_module(module, X, Y, None, None, cfg, ctx)]


# --------------------------------------------------------------------------- matmul peak


def layer_dims(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def matmul_peak(dims: list[tuple[int, int]], batch: int, min_seconds: float = 1.0) -> tuple[float, float]:
    """(mix, best single) FLOP/s of torch.mm on one training step's GEMMs, contiguous operands."""
    problems = []
    for d_in, d_out in dims:
        problems += [((batch, d_in), (d_in, d_out)), ((batch, d_out), (d_out, d_in)),
                     ((d_out, batch), (batch, d_in))]
    tensors = [(torch.randn(*a), torch.randn(*b)) for a, b in problems]
    flops = [2.0 * a[0] * a[1] * b[1] for a, b in problems]

    def rate(pairs, fl) -> float:
        for a, b in pairs:  # warm up
            torch.mm(a, b)
        best, spent = float("inf"), 0.0
        while spent < min_seconds:
            t0 = time.perf_counter()
            for a, b in pairs:
                torch.mm(a, b)
            dt = time.perf_counter() - t0
            best, spent = min(best, dt), spent + dt
        return sum(fl) / best

    mix = rate(tensors, flops)
    single = max(rate([p], [f]) for p, f in zip(tensors, flops))
    return mix, single


# --------------------------------------------------------------------------- driver


def make_module(hidden: int, n_in: int, n_out: int, notebook_dropout: bool = False) -> nn.Module:
    torch.manual_seed(0)
    module = SimpleNN(hidden_size=hidden).build_module(n_in, n_out)
    if notebook_dropout:
        for i, layer in enumerate(module):
            if isinstance(layer, FastDropout):
                module[i] = nn.Dropout(layer.p)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--features", type=int, default=875)
    ap.add_argument("--targets", type=int, default=206)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--hidden", type=int, nargs="+", default=[2048, 256])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-notebook-dropout", action="store_true", help="skip the informational (b') rows")
    args = ap.parse_args()

    set_threads(args.threads)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.features)).astype(np.float32)
    Y = (rng.random((args.rows, args.targets)) < 0.004).astype(np.float32)  # MoA-like positive rate
    n, bs = args.rows, args.batch_size
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {n} rows × {args.features} → "
          f"{args.targets}, batch {bs}, {args.repeats} runs × {args.epochs} epochs per method; "
          f"load avg {os.getloadavg()[0]:.2f}")

    rows = []
    for hidden in args.hidden:
        dims = layer_dims(make_module(hidden, args.features, args.targets))
        flops = 6.0 * sum(i * o for i, o in dims) * n  # per epoch

        warm = slice(0, min(n, 8 * bs))  # thread pools, allocator, MKL kernels
        run_trainer(make_module(hidden, args.features, args.targets), X[warm], Y[warm], 1, bs, args.threads)
        run_notebook(make_module(hidden, args.features, args.targets), X[warm], Y[warm], 1, bs)

        methods: dict[str, list[float]] = {"trainer": [], "notebook": [], "notebook+nn.Dropout": []}
        for _ in range(args.repeats):
            methods["trainer"].extend(run_trainer(make_module(hidden, args.features, args.targets),
                                                  X, Y, args.epochs, bs, args.threads))
            methods["notebook"].extend(run_notebook(make_module(hidden, args.features, args.targets),
                                                    X, Y, args.epochs, bs))
            if not args.skip_notebook_dropout:
                methods["notebook+nn.Dropout"].extend(run_notebook(
                    make_module(hidden, args.features, args.targets, notebook_dropout=True),
                    X, Y, args.epochs, bs))
        mix, single = matmul_peak(dims, bs)
        best = {k: min(v) for k, v in methods.items() if v}
        median = {k: float(np.median(v)) for k, v in methods.items() if v}
        rows.append((hidden, best, median, flops, mix, single))

    print()
    print(f"{'hidden':>6}  {'method':<20} {'s/epoch':>8} {'samples/s':>10} {'vs notebook':>11} "
          f"{'GFLOP/s':>8} {'% mm mix':>9} {'% best shape':>12}  {'median s/epoch':>14}")
    for hidden, best, median, flops, mix, single in rows:
        for name, secs in best.items():
            rate = flops / secs
            print(f"{hidden:>6}  {name:<20} {secs:>8.3f} {n / secs:>10.0f} "
                  f"{best['notebook'] / secs:>10.2f}× {rate / 1e9:>8.1f} {100 * rate / mix:>8.1f}% "
                  f"{100 * rate / single:>11.1f}%  {median[name]:>14.3f}")
        print(f"{hidden:>6}  {'torch.mm peak':<20} mm mix {mix / 1e9:.1f} GFLOP/s, "
              f"best shape {single / 1e9:.1f} GFLOP/s")
    print("\nFLOPs per training sample: 6 · Σ in·out over the Linear layers (forward + both backward GEMMs).")
    print("Targets: trainer ≥ 1.5× notebook at hidden 256, ≥ 1.0× at 2048, ≥ 70% of the mm mix at 2048.")
    print(f"load avg at the end {os.getloadavg()[0]:.2f} (other processes on the node disturb CPU timings)")


if __name__ == "__main__":
    main()
