"""GPU costs of the winner preset's models, and a CUDA-vs-CPU agreement check. Needs a CUDA device.

What it measures on synthetic data of the real width (875 raw columns; 877 with the one-hots the
DeepInsight feature set adds), ``--rows`` rows (a fifth held out for validation), ``--epochs`` epochs:

(1) DeepInsight CNNs at the winners' sizes, pretrained=False (no download): EfficientNet-B3 on
    300 × 300 images (batch 48) and ResNeSt-50d on 224 × 224 (batch 128), AMP on and off: seconds per
    epoch (train + validation) and training images/s, prediction images/s.
(2) The full-size simple NN (2 × 2048 hidden, batch 256) on 23,814 rows: seconds per epoch.
(3) TabNet with the winner preset's parameters (n_d = n_a = 32, batch 1024, virtual batch 128) on
    23,814 rows: seconds per epoch.
(4) A small simple NN fitted on the CPU predicts the same rows on the CPU and on CUDA: max abs
    difference within --tolerance. The same NN fitted on CUDA is compared too (reported, not checked:
    dropout masks come from another random generator there).

Only the models' public interface is used: ``build_model(arch, params)``, ``fit(X, Y, X_valid,
Y_valid, context)``, ``predict(X, context)`` and ``FitContext``. Without CUDA it prints
"no CUDA device: nothing measured" and exits 0.

    PYTHONPATH=src .venv/bin/python benchmarks/gpu.py [--rows 400 --epochs 2 --out gpu.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

WIDTH = 875  # lish-moa's feature columns
N_NUMERIC = 872  # g-/c- columns
DEEPINSIGHT = (  # (label, backbone, image side, batch): the winner preset's two CNNs
    ("efficientnet_b3@300", "efficientnet_b3", 300, 48),
    ("resnest50d@224", "resnest50d", 224, 128),
)
FULL_ROWS = 23814


def synthetic(rows: int, features: int, targets: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features in correlated blocks and rare targets driven by a few blocks (like lish-moa's)."""
    rng = np.random.default_rng(seed)
    blocks = max(1, features // 20)
    Z = rng.normal(size=(rows, blocks)).astype(np.float32)
    X = Z[:, rng.integers(0, blocks, features)] + 0.7 * rng.normal(size=(rows, features)).astype(np.float32)
    logits = 2.0 * Z[:, np.arange(targets) % blocks] - 4.0
    Y = (rng.random((rows, targets)) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    return X.astype(np.float32), Y


def context(device: str, threads: int, feature_map: Any = None):
    """A FitContext; the feature map goes into it where the context has the field (the new interface)."""
    from moastack.models.base import FitContext

    kwargs: dict[str, Any] = {"seed": 0, "device": device, "threads": threads, "logger": logging.getLogger("gpu")}
    if feature_map is not None and "feature_map" in getattr(FitContext, "__dataclass_fields__", {}):
        kwargs["feature_map"] = feature_map
    return FitContext(**kwargs)


def attach_map(model: Any, fmap: Any) -> None:
    """The old interface: the feature map is an attribute set before fit."""
    from moastack.models.base import FitContext

    if "feature_map" not in getattr(FitContext, "__dataclass_fields__", {}):
        model.feature_map_ = fmap


def epoch_seconds(model: Any, total: float, epochs: int) -> list[float]:
    """Per-epoch seconds from the model's history when it records them, else the fit time / epochs."""
    secs = [h["seconds"] for h in getattr(model, "history_", []) if isinstance(h, dict) and "seconds" in h]
    return secs or [total / max(epochs, 1)] * epochs


def timed_fit(model: Any, X: np.ndarray, Y: np.ndarray, ctx: Any, cuda: bool) -> float:
    import torch

    n_valid = max(1, len(X) // 5)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.fit(X[n_valid:], Y[n_valid:], X[:n_valid], Y[:n_valid], ctx)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_deepinsight(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from moastack.deepinsight.feature_map import fit_feature_map
    from moastack.models.registry import build_model

    n_features = N_NUMERIC + 5  # raw g-/c- + cp_time/cp_dose one-hots, as the raw_onehot feature set
    X, Y = synthetic(args.rows, n_features, 206)
    names = [f"g-{j}" for j in range(772)] + [f"c-{j}" for j in range(100)] + [f"onehot-{j}" for j in range(5)]
    out = []
    maps = {}
    for label, backbone, side, batch in DEEPINSIGHT:
        if side not in maps:
            t0 = time.perf_counter()
            maps[side] = fit_feature_map(X, names, side, side, seed=0, perplexity=30.0, n_jobs=args.threads)
            print(f"  feature map {side}×{side}: {time.perf_counter() - t0:.1f} s (t-SNE, CPU)", flush=True)
        fmap = maps[side]
        for amp in (True, False):
            params = {"backbone": backbone, "pretrained": False, "epochs": args.epochs, "batch_size": batch,
                      "patience": None, "amp": amp, "head_hidden": 512}
            model = build_model("deepinsight", params)
            attach_map(model, fmap)
            ctx = context(args.device, args.threads, fmap)
            cuda = args.device == "cuda"
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            total = timed_fit(model, X, Y, ctx, cuda=cuda)
            secs = epoch_seconds(model, total, args.epochs)
            n_train = len(X) - max(1, len(X) // 5)
            t0 = time.perf_counter()
            model.predict(X, ctx)
            if cuda:
                torch.cuda.synchronize()
            pred_s = time.perf_counter() - t0
            steady = min(secs[1:]) if len(secs) > 1 else secs[0]
            row = {"model": label, "backbone": backbone, "image": side, "batch": batch, "amp": amp,
                   "rows": len(X), "epochs": args.epochs, "s_per_epoch": steady, "epoch_seconds": secs,
                   "train_images_per_s": n_train / steady, "predict_images_per_s": len(X) / pred_s,
                   "fit_s": total, "peak_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}
            # what one fold of the winner preset costs at this speed (real rows, its epochs)
            row["winner_fold_s_35_epochs"] = 35 * (FULL_ROWS * 0.9 * 3 + FULL_ROWS * 0.1) / (3 * row["train_images_per_s"])
            out.append(row)
            print(f"  {label:22s} amp {'on ' if amp else 'off'}  {steady:7.2f} s/epoch on {n_train} images  "
                  f"{row['train_images_per_s']:8.1f} train img/s  {row['predict_images_per_s']:8.1f} predict img/s  "
                  f"peak {row['peak_gpu_mem_gb'] or 0:.1f} GB", flush=True)
            del model
            if cuda:
                torch.cuda.empty_cache()
    return out


def bench_tabular(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from moastack.models.registry import build_model

    rows = args.full_rows
    out = []
    specs = (
        ("simple_nn 2x2048", "simple_nn", 1018, {"hidden": [2048, 2048], "epochs": args.epochs, "batch_size": 256,
                                                 "patience": None}),
        ("tabnet n_d=32", "tabnet", 1150, {"n_d": 32, "n_a": 32, "n_steps": 1, "batch_size": 1024,
                                           "virtual_batch_size": 128, "max_epochs": args.epochs,
                                           "patience": args.epochs + 1}),
    )
    for label, arch, width, params in specs:
        X, Y = synthetic(rows, width, 206, seed=1)
        for device in (args.device, "cpu") if args.cpu_reference and args.device == "cuda" else (args.device,):
            model = build_model(arch, params)
            ctx = context(device, args.threads)
            total = timed_fit(model, X, Y, ctx, cuda=device == "cuda")
            secs = epoch_seconds(model, total, args.epochs)
            steady = min(secs[1:]) if len(secs) > 1 else secs[0]
            out.append({"model": label, "arch": arch, "device": device, "rows": rows, "width": width,
                        "epochs": args.epochs, "s_per_epoch": steady, "epoch_seconds": secs, "fit_s": total})
            print(f"  {label:22s} {device:4s}  {steady:7.2f} s/epoch on {rows - rows // 5} rows × {width}  "
                  f"(fit {total:.1f} s)", flush=True)
            del model
            if device == "cuda":
                torch.cuda.empty_cache()
    return out


def check_agreement(args: argparse.Namespace) -> dict[str, Any]:
    from moastack.models.registry import build_model

    X, Y = synthetic(600, 60, 12, seed=2)
    params = {"hidden": [64], "dropout": [0.1, 0.2], "epochs": 3, "batch_size": 64, "patience": None}
    cpu_model = build_model("simple_nn", params)
    cpu_model.fit(X[:480], Y[:480], X[480:], Y[480:], context("cpu", args.threads))
    p_cpu = cpu_model.predict(X[480:], context("cpu", args.threads))
    p_cuda = cpu_model.predict(X[480:], context("cuda", args.threads))
    same_model = float(np.abs(p_cpu - p_cuda).max())
    cuda_model = build_model("simple_nn", params)
    cuda_model.fit(X[:480], Y[:480], X[480:], Y[480:], context("cuda", args.threads))
    p_cuda_fit = cuda_model.predict(X[480:], context("cpu", args.threads))
    fitted_apart = float(np.abs(p_cpu - p_cuda_fit).max())
    ok = same_model <= args.tolerance
    print(f"  one CPU-fitted simple NN, predictions on CPU vs CUDA: max |diff| {same_model:.2e} "
          f"(tolerance {args.tolerance:g}): {'OK' if ok else 'FAILED'}")
    print(f"  fitted on CPU vs fitted on CUDA (same seed; reported only): max |diff| {fitted_apart:.2e}, "
          f"mean {float(np.abs(p_cpu - p_cuda_fit).mean()):.2e}")
    return {"predict_max_abs_diff": same_model, "tolerance": args.tolerance, "ok": ok,
            "fit_cpu_vs_cuda_max_abs_diff": fitted_apart}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=400, help="rows for the CNNs (a fifth is validation)")
    parser.add_argument("--full-rows", type=int, default=FULL_ROWS, help="rows for the simple NN and TabNet")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--cpu-reference", action="store_true", help="also time the simple NN and TabNet on CPU")
    parser.add_argument("--skip", nargs="*", default=[], choices=["deepinsight", "tabular", "agreement"])
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: run the same code on the CPU (to try the script at tiny --rows/--full-rows)")
    args = parser.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        if args.out:
            args.out.write_text(json.dumps({"cuda": False, "measured": {}}, indent=2) + "\n")
        return 0
    logging.basicConfig(level=logging.WARNING)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    print(f"device: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}; {args.rows} rows × {WIDTH} columns "
          f"for the CNNs, {args.full_rows} rows for the simple NN / TabNet, {args.epochs} epochs")
    result: dict[str, Any] = {"cuda": args.device == "cuda", "device": name, "torch": torch.__version__,
                              "cuda_version": torch.version.cuda,
                              "host": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "args": {**vars(args), "out": str(args.out) if args.out else None}}
    measured: dict[str, Any] = {}
    if "deepinsight" not in args.skip:
        print("DeepInsight CNNs (pretrained=False, synthetic images):")
        measured["deepinsight"] = bench_deepinsight(args)
    if "tabular" not in args.skip:
        print("tabular NNs at full size:")
        measured["tabular"] = bench_tabular(args)
    if "agreement" not in args.skip and args.device == "cuda":
        print("CUDA vs CPU:")
        measured["agreement"] = check_agreement(args)
    result["measured"] = measured
    if "deepinsight" in measured:
        print("\nmodel                  amp   s/epoch  train img/s  predict img/s  est. winner fold (35 ep.)")
        for r in measured["deepinsight"]:
            print(f"{r['model']:22s} {'on ' if r['amp'] else 'off'} {r['s_per_epoch']:9.2f} {r['train_images_per_s']:12.0f} "
                  f"{r['predict_images_per_s']:14.0f}  {r['winner_fold_s_35_epochs'] / 3600:6.2f} h")
    if "tabular" in measured:
        med = statistics.median(r["s_per_epoch"] for r in measured["tabular"])
        print(f"tabular: median {med:.2f} s/epoch over {len(measured['tabular'])} runs")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    agreement = measured.get("agreement")
    return 0 if agreement is None or agreement["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
