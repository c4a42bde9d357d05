"""DeepInsight CNN costs: feature-map fit, image rendering throughput, and seconds per training epoch.

(1) t-SNE feature map: one embedding of --features synthetic lish-moa-like features (blocks sharing
    latent factors) on --rows rows, then binned to the demo grid (--image) and the winners' grid
    (--winner-image, EfficientNet-B3's 300 × 300).
(2) Rendering, images/s at both grid sizes, for a batch of --render-batch rows:
      render_images   the functional scatter_reduce version (mean/amin/amax into the full grid),
      Renderer        the module the model uses (scatter over occupied pixels, then index_copy),
      reference       the per-sample Python loop (on --ref-samples rows only, so that it finishes).
(3) Training: DeepInsightCNN (--backbone, default resnet10t) on --rows × --features at --image,
    batch --batch, --epochs epochs with a validation fifth; seconds per epoch from its history.

Times are the best of --repeats runs (the least disturbed one on a shared machine), median beside it.

    PYTHONPATH=src .venv/bin/python benchmarks/deepinsight.py [--rows 4000 --epochs 1 --device cuda --amp on]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from moastack.deepinsight.feature_map import FeatureMap, LogNorm2Scaler, embed_features, positions_to_pixels
from moastack.deepinsight.render import Renderer, render_images, render_images_reference
from moastack.models.base import FitContext
from moastack.models.deepinsight import DeepInsightCNN
from moastack.models.trainer import set_threads, tune_cpu_allocator


def synthetic(rows: int, features: int, targets: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows whose features come in correlated blocks (like gene modules) and rare targets on a few blocks."""
    rng = np.random.default_rng(seed)
    blocks = max(1, features // 20)
    Z = rng.normal(size=(rows, blocks))
    X = Z[:, rng.integers(0, blocks, features)] + 0.7 * rng.normal(size=(rows, features))
    logits = 2.0 * Z[:, np.arange(targets) % blocks] - 4.0
    Y = (rng.random((rows, targets)) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    n_genes = min(features, max(0, features - 107))
    names = [f"g-{j}" for j in range(n_genes)] + [f"c-{j}" for j in range(min(100, features - n_genes))]
    names += [f"other-{j}" for j in range(features - len(names))]
    return X.astype(np.float32), Y, names


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> tuple[float, float]:
    """(best, median) seconds of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def bench_render(fmap: FeatureMap, Xs: np.ndarray, args: argparse.Namespace, device: torch.device) -> None:
    batch = torch.as_tensor(Xs[: args.render_batch]).to(device)
    pixel = torch.as_tensor(fmap.pixel_index).to(device)
    renderer = Renderer(fmap.pixel_index, fmap.height, fmap.width).to(device)
    ref_rows = Xs[: args.ref_samples]
    used = int((fmap.occupancy() > 0).sum())
    print(f"\nrender {fmap.n_features} features → 3×{fmap.height}×{fmap.width} ({used} pixels used, "
          f"≤ {fmap.occupancy().max()} per pixel), batch {len(batch)} on {device}")
    results = {}
    with torch.inference_mode():
        for name, fn, n in (
            ("render_images", lambda: render_images(batch, pixel, fmap.height, fmap.width), len(batch)),
            ("Renderer", lambda: renderer(batch), len(batch)),
            ("reference", lambda: render_images_reference(ref_rows, fmap.rows, fmap.cols, fmap.height, fmap.width),
             len(ref_rows)),
        ):
            repeats = args.repeats if name != "reference" else max(1, args.repeats // 3)
            best, median = timed(fn, repeats, device if name != "reference" else torch.device("cpu"))
            results[name] = n / best
            print(f"  {name:14s} {n / best:12,.0f} images/s  (best {best * 1e3:8.2f} ms, median {median * 1e3:8.2f} ms"
                  f" for {n} images)")
    print(f"  speed-up vs reference: render_images ×{results['render_images'] / results['reference']:,.0f}, "
          f"Renderer ×{results['Renderer'] / results['reference']:,.0f}")


def bench_train(X: np.ndarray, Y: np.ndarray, fmap: FeatureMap, args: argparse.Namespace) -> None:
    n_valid = len(X) // 5
    params = {"backbone": args.backbone, "epochs": args.epochs, "batch_size": args.batch, "patience": None,
              "amp": args.amp == "on"}
    model = DeepInsightCNN(**params)
    context = FitContext(seed=0, device=args.device, threads=args.threads, logger=logging.getLogger("bench"),
                         feature_map=fmap)
    t0 = time.perf_counter()
    model.fit(X[n_valid:], Y[n_valid:], X[:n_valid], Y[:n_valid], context)
    total = time.perf_counter() - t0
    secs = [h["seconds"] for h in model.history_]
    n_train = len(X) - n_valid
    print(f"\ntrain {args.backbone} on {n_train} rows × {X.shape[1]} features, {fmap.height}×{fmap.width} images, "
          f"batch {args.batch}, device {args.device}, amp {args.amp}, {args.threads} threads")
    print(f"  seconds/epoch (train + validation on {n_valid} rows): best {min(secs):.2f}, "
          f"median {statistics.median(secs):.2f}  → {n_train / min(secs):,.0f} training images/s")
    losses = [round(h["valid_loss"], 5) for h in model.history_]
    print(f"  whole fit incl. model build: {total:.2f} s; valid losses {losses}")
    t0 = time.perf_counter()
    model.predict(X[:n_valid], context)
    print(f"  predict {n_valid} rows: {time.perf_counter() - t0:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--features", type=int, default=879)
    parser.add_argument("--image", type=int, default=32, help="demo grid side")
    parser.add_argument("--winner-image", type=int, default=300, help="the winners' grid side (0 skips it)")
    parser.add_argument("--render-batch", type=int, default=64)
    parser.add_argument("--ref-samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1, help="0 skips the training benchmark")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", default="on", choices=["on", "off"], help="autocast (CUDA only)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()  # what the training loop does: big image buffers are reused, not re-faulted

    X, Y, names = synthetic(args.rows, args.features)
    t0 = time.perf_counter()
    scaler = LogNorm2Scaler()
    Xs = scaler.fit_transform(X)
    positions = embed_features(Xs, seed=0, n_jobs=args.threads)
    print(f"t-SNE of {args.features} features on {args.rows} rows: {time.perf_counter() - t0:.1f} s")
    maps = {}
    for side in (args.image, args.winner_image):
        if side:
            rows, cols = positions_to_pixels(positions, side, side)
            maps[side] = FeatureMap(names, side, side, rows, cols, scaler)
    for fmap in maps.values():
        bench_render(fmap, Xs, args, device)
    if args.epochs:
        bench_train(X, Y, maps[args.image], args)


if __name__ == "__main__":
    main()
