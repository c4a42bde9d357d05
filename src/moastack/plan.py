"""Cost preview of a workflow run: jobs, CPU/GPU hours and peak memory per rule and model, before running.

``moastack plan [--configfile FILE] [--rows N --features P]`` builds the job graph the way the workflow
does (``rules/*.smk``: one ``train`` job per model × seed × fold from :func:`moastack.config.model_jobs`,
one ``collect`` per model, the fold schemes, feature sets and feature maps the models use...), gives
every job an estimated wall time and peak memory from a small size model, and list-schedules the graph
on ``--cores`` cores (and ``--gpus`` GPUs) to estimate the run's wall time and its critical path.

The size model, per rule (and per architecture for ``train``), is

    seconds = start-up + rate × size          peak RSS = base + bytes × (rows × columns × 4)

where *size* is the rule's natural work unit: rows × features for ``prepare``, rows × features ×
step cost for ``features``, (training rows × 3 + validation rows) × epochs × multiply-adds per row for
the NNs, images × epochs × backbone GFLOPs for DeepInsight CNNs... The start-up and rate constants in
:data:`CALIBRATION` were fitted on measured runs (the rules' own ``results/benchmarks/*.tsv``); the
comment above that table says which runs, on which machine. ``moastack plan --calibrate RESULTS``
refits them from another run's benchmark files, for another machine.

Estimates are for full epoch counts (early stopping only shortens a job), with the threads the config
gives each job. This module imports neither torch nor the models: it reads the config only.
"""

from __future__ import annotations

import copy
import heapq
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moastack.config import blend_members, model_jobs, resources_for, wants_gpu
from moastack.models import resnet_concat

# --------------------------------------------------------------------------- data sizes

#: lish-moa's real size: 23,814 train rows, 3,982 test rows, 875 feature columns (sig_id aside)
REAL_SIZE = {"n_train": 23814, "n_test": 3982, "n_features": 875}
N_CATEGORICAL = 3  # cp_type, cp_time, cp_dose: the rest of the feature columns are g-/c- numbers
N_SCORED, N_NONSCORED = 206, 402
N_ONEHOT = 5  # cp_time (3) + cp_dose (2)
CONTROL_FRACTION = 0.078  # lish-moa: 1,866 of 23,814 train rows are controls (synthetic: ~8%)
#: multiply-adds per image of the timm backbones at 224 × 224 (GMACs; timm's model cards / torch's
#: FlopCounterMode); a CNN's cost scales with the pixel count. Unknown names fall back to "default".
BACKBONE_GMACS_224 = {
    "resnet10t": 1.1,
    "resnet18": 1.8,
    "resnet34": 3.6,
    "resnet50": 4.1,
    "resnest50d": 5.4,
    "efficientnet_b0": 0.4,
    "efficientnet_b3": 1.0,
    "tf_efficientnet_b3": 1.0,
    "default": 2.0,
}


@dataclass
class Sizes:
    """Rows and feature columns of the data a config runs on."""

    n_train: int
    n_test: int
    n_features: int

    @property
    def n_numeric(self) -> int:
        return max(1, self.n_features - N_CATEGORICAL)


def data_sizes(config: dict, rows: int | None = None, features: int | None = None,
               test_rows: int | None = None) -> Sizes:
    """The config's data size: the synthetic generator's ``n_train``/``n_test``, lish-moa's real size for
    ``source: dir``; ``rows``/``features``/``test_rows`` override (test rows follow the real ratio)."""
    data = config.get("data", {})
    if data.get("source", "synthetic") == "synthetic":
        syn = data.get("synthetic", {})
        n_train, n_test = int(syn.get("n_train", 4000)), int(syn.get("n_test", 1000))
    else:
        n_train, n_test = REAL_SIZE["n_train"], REAL_SIZE["n_test"]
    n_features = REAL_SIZE["n_features"]
    if rows is not None:
        if test_rows is None:
            test_rows = max(1, round(rows * n_test / max(n_train, 1)))
        n_train = int(rows)
    if test_rows is not None:
        n_test = int(test_rows)
    if features is not None:
        n_features = int(features)
    return Sizes(n_train, n_test, n_features)


# --------------------------------------------------------------------------- the job graph


@dataclass
class PlannedJob:
    """One job of the planned run, with the wildcards Snakemake prints for it."""

    rule: str
    wildcards: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    threads: int = 1
    gpu: bool = False
    deps: list[str] = field(default_factory=list)
    cost_class: str = ""  # the key of CALIBRATION whose constants price this job
    size: float = 0.0  # the work unit the rate multiplies
    data_bytes: float = 0.0  # bytes of the tables the job holds (memory model)
    seconds: float = 0.0  # estimated wall time
    mem_mb: float = 0.0  # estimated peak RSS

    @property
    def key(self) -> str:
        wc = ",".join(f"{k}={v}" for k, v in self.wildcards.items())
        return f"{self.rule}[{wc}]" if wc else self.rule

    @property
    def wildcard_text(self) -> str:
        """As a dry run lists them: ``model=nn,seed=0,fold=1``."""
        return ",".join(f"{k}={v}" for k, v in self.wildcards.items())


def _used_feature_sets(config: dict) -> list[str]:
    used = {m["features"] for m in config["models"].values()}
    return [name for name in config["features"] if name in used]


def _used_feature_maps(config: dict) -> list[str]:
    used = {m["feature_map"] for m in config["models"].values() if "feature_map" in m}
    return [name for name in config.get("feature_maps", {}) if name in used]


def _used_schemes(config: dict) -> list[str]:
    used = {m["folds"] for m in config["models"].values()}
    return [name for name in config["folds"] if name in used]


def plan_jobs(config: dict) -> list[PlannedJob]:
    """Every job ``snakemake`` would run for ``config`` (validated, defaults filled), dependencies included,
    as ``rules/*.smk`` wires them. ``all`` (a local rule that runs nothing) is left out."""
    models = config["models"]
    jobs: list[PlannedJob] = []

    def add(rule: str, wildcards: dict | None = None, model: str | None = None, deps: list[str] | None = None
            ) -> PlannedJob:
        res = resources_for(config, rule, model)
        job = PlannedJob(rule, dict(wildcards or {}), model, int(res.get("threads", 1)),
                         bool(model is not None and rule == "train" and wants_gpu(config, model)),
                         list(deps or []))
        jobs.append(job)
        return job

    prepare = add("prepare")
    folds = {s: add("folds", {"scheme": s}, deps=[prepare.key]) for s in _used_schemes(config)}
    fsets = {f: add("features", {"fset": f}, deps=[prepare.key]) for f in _used_feature_sets(config)}
    fmaps = {
        name: add("feature_map", {"fmap": name}, deps=[fsets[config["feature_maps"][name]["features"]].key])
        for name in _used_feature_maps(config)
    }
    studies = {}
    for study, t in config.get("tune", {}).items():
        base = models[t["model"]]
        deps = [prepare.key, folds[base["folds"]].key, fsets[base["features"]].key]
        deps += [f"collect[model={u}]" for u in base.get("meta", [])]
        if "feature_map" in base:
            deps.append(fmaps[base["feature_map"]].key)
        studies[study] = add("tune", {"study": study}, model=None, deps=deps)
    train_keys: dict[str, list[str]] = {}
    for name, m in models.items():
        keys = []
        for seed, fold in model_jobs(config, name):
            deps = [prepare.key, folds[m["folds"]].key, fsets[m["features"]].key]
            deps += [f"collect[model={u}]" for u in m.get("meta", [])]
            for same_job in ("init_from", "pseudo_from"):
                if same_job in m:
                    deps.append(f"train[model={m[same_job]},seed={seed},fold={fold}]")
            if "feature_map" in m:
                deps.append(fmaps[m["feature_map"]].key)
            if "params_from" in m:
                deps.append(studies[m["params_from"].split("/", 1)[1]].key)
            keys.append(add("train", {"model": name, "seed": seed, "fold": fold}, model=name, deps=deps).key)
        train_keys[name] = keys
    collects = {name: add("collect", {"model": name}, model=None, deps=train_keys[name]) for name in models}
    known = {j.key for j in jobs}
    for job in jobs:  # the collect/tune/train keys named above exist now
        if job.rule in ("train", "tune"):
            missing = [d for d in job.deps if d not in known]
            if missing:
                raise ValueError(f"plan: {job.key} depends on unknown jobs {missing}")
    blend = add("blend", deps=[collects[m].key for m in blend_members(config)])
    add("submission", deps=[blend.key, prepare.key])
    report_deps = [prepare.key, blend.key, *[c.key for c in collects.values()],
                   *[k for keys in train_keys.values() for k in keys], *[f.key for f in folds.values()],
                   *[f.key for f in fmaps.values()]]
    add("report", deps=report_deps)
    return jobs


def job_counts(jobs: list[PlannedJob]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for job in jobs:
        counts[job.rule] += 1
    return dict(counts)


# --------------------------------------------------------------------------- widths and work units


def feature_set_width(spec: dict, sizes: Sizes) -> int:
    """Columns of a feature set: the g-/c- numbers (kept by every step) plus what its steps add."""
    width = sizes.n_numeric
    for step in spec.get("steps", []):
        name = step["name"]
        if name in ("pca", "umap", "factor_analysis"):
            width += int(step.get("n_components", 2))
        elif name == "kmeans":
            width += int(step.get("n_clusters", 8))
        elif name == "row_stats":
            width += len(step.get("stats", ["mean", "std", "skew", "kurtosis"])) * len(step.get("blocks", ["genes", "cells"]))
        elif name == "onehot":
            width += N_ONEHOT
        elif name == "ordinal":
            width += len(step.get("categories") or ("cp_time", "cp_dose"))  # one code per column
        elif name == "morgan":
            width += int(step.get("n_bits", 2048))
    return width


def _block_width(step: dict, sizes: Sizes) -> int:
    """Input columns of one feature step (genes ≈ 88% of the g-/c- numbers, cells the rest; the winners'
    factor blocks, 90 + 50 factors, about 16% of them)."""
    block = step.get("block")
    blocks = step.get("blocks", [block] if block else ["genes", "cells"])
    share = {"genes": 0.885, "cells": 0.115, "gc": 1.0, "all": 1.0, "pca": 0.06, "fa": 0.16}
    return max(1, round(sizes.n_numeric * sum(share.get(str(b), 1.0) for b in blocks)))


#: relative cost of feature steps per (row × input column), rankgauss = 1 (the features class's rate prices
#: the sum). ASSUMED, not measured: the demo's feature sets hold only rankgauss, pca, row_stats, onehot and
#: variance_threshold (the rate is fitted on them); umap, factor_analysis and kmeans never ran in a
#: calibration run, so the winner preset's feature jobs are the least certain figures of the plan.
STEP_WEIGHT = {
    "rankgauss": 1.0, "pca": 0.3, "row_stats": 0.2, "onehot": 0.0, "ordinal": 0.0, "variance_threshold": 0.05,
    "standardize": 0.05, "umap": 6.0, "factor_analysis": 3.0, "kmeans": 1.0, "morgan": 0.5,
    "rdkit_descriptors": 2.0,
}


def feature_work(spec: dict, sizes: Sizes) -> float:
    fit_rows = sizes.n_train + (sizes.n_test if spec.get("fit_on", "train+test") == "train+test" else 0)
    total_rows = sizes.n_train + sizes.n_test
    work = 0.0
    for step in spec.get("steps", []):
        w = STEP_WEIGHT.get(step["name"], 1.0)
        work += w * fit_rows * _block_width(step, sizes)
    # every set reads and writes its table
    return work + 0.1 * total_rows * feature_set_width(spec, sizes)


def _targets(model: dict) -> int:
    return N_NONSCORED if model.get("targets", "scored") == "nonscored" else N_SCORED


def model_input_width(config: dict, name: str, sizes: Sizes) -> int:
    m = config["models"][name]
    meta = sum(_targets(config["models"][u]) for u in m.get("meta", []))
    if m.get("meta_only"):
        return max(1, meta)
    width = feature_set_width(config["features"][m["features"]], sizes) + meta
    for step in m.get("fold_steps", []):
        if step["name"] == "ttest_select":
            q = float(step.get("quantile", 0.25))
            width = width + round(width * q) if step.get("copy") else max(1, round(width * q + 0.1 * width))
    return width


def mlp_macs(n_in: int, hidden: list[int], n_out: int) -> int:
    sizes = [n_in, *hidden, n_out]
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def concat_resnet_macs(n_a: int, n_b: int, head_a: list[int], n_out: int) -> int:
    """Multiply-adds of one row through ``resnet2h``'s concat layout (``models/resnet_concat.py``)."""
    n_in = resnet_concat.input_widths(head_a[-1], n_b)
    blocks = sum(mlp_macs(n_in[b.name], list(b.widths[:-1]), b.widths[-1]) for b in resnet_concat.BLOCKS)
    return mlp_macs(n_a, head_a[:-1], head_a[-1]) + blocks + resnet_concat.TAIL.widths[-1] * n_out


def _simple_nn_hidden(params: dict) -> list[int]:
    if params.get("hidden") is not None:
        return [int(h) for h in params["hidden"]]
    return [int(params.get("hidden_size", 2048))] * int(params.get("n_hidden", 2))


def macs_per_row(arch: str, params: dict, n_in: int, n_out: int) -> float:
    """Multiply-adds of one forward pass of one row (the NN archs' size unit)."""
    if arch == "simple_nn":
        return mlp_macs(n_in, _simple_nn_hidden(params), n_out)
    if arch == "resnet2h":
        a = [int(h) for h in params.get("head_a_hidden", [512, 256])]
        b = [int(h) for h in params.get("head_b_hidden", [512, 512, 256, 256])]
        t = [int(h) for h in params.get("tail_hidden", [256])]
        if params.get("layout") == "concat":  # the winners' graph, fixed widths; input 2 ~ a third of the columns
            n_b = n_in // 3
            return concat_resnet_macs(n_in - n_b, n_b, a, n_out)
        n_a = max(1, n_in // 10)
        return mlp_macs(n_a, a[:-1], a[-1]) + mlp_macs(n_in + a[-1], b[:-1], b[-1]) + mlp_macs(b[-1], t, n_out)
    if arch == "tabnet":
        nd, na = int(params.get("n_d", 32)), int(params.get("n_a", 32))
        steps = int(params.get("n_steps", 1))
        glu = 2 * (nd + na)
        layers = int(params.get("n_shared", 2)) + int(params.get("n_independent", 2))
        per_step = n_in * glu + (layers - 1) * (nd + na) * glu + na * n_in
        return (steps + 1) * per_step + nd * n_out
    return 1.0


def _epochs(arch: str, m: dict) -> int:
    p = m.get("params", {}) or {}
    if arch == "tabnet":
        return int(p.get("max_epochs", 200))
    if arch == "resnet2h":
        epochs = int(p.get("epochs", 50))
        return epochs * (2 if "init_from" in m else 1)  # transfer: frozen phase, then unfrozen phase
    if arch == "deepinsight":
        return int(p.get("epochs", 10))
    if arch == "random_forest":
        return 1
    return int(p.get("epochs", 25))


def _backbone_gmacs(m: dict, config: dict) -> float:
    p = m.get("params", {}) or {}
    name = str(p.get("backbone", "resnet10t")).split(".")[0]
    gmacs = BACKBONE_GMACS_224.get(name, BACKBONE_GMACS_224["default"])
    fmap = config.get("feature_maps", {}).get(m.get("feature_map", ""), {})
    h, w = int(fmap.get("height", 32)), int(fmap.get("width", 32))
    return gmacs * (h * w) / (224 * 224)


def train_work(config: dict, name: str, sizes: Sizes) -> tuple[str, float, float]:
    """(cost class, work units, bytes held) of one train job of model ``name``."""
    m = config["models"][name]
    arch = m["arch"]
    k = int(config["folds"][m["folds"]]["k"])
    keep = 1.0 - (CONTROL_FRACTION if m.get("drop_controls", True) else 0.0)
    n_fit = sizes.n_train * (k - 1) / k * keep
    n_valid = sizes.n_train / k
    n_in, n_out = model_input_width(config, name, sizes), _targets(m)
    data_bytes = 4.0 * (sizes.n_train + sizes.n_test) * (n_in + n_out)
    epochs = _epochs(arch, m)
    params = m.get("params", {}) or {}
    if arch == "prior":
        return "train:prior", float((sizes.n_train + sizes.n_test) * n_out), data_bytes
    if arch == "deepinsight":
        gmacs = _backbone_gmacs(m, config)
        images = epochs * (3 * n_fit + n_valid) + sizes.n_test
        return "train:deepinsight", images * gmacs, data_bytes
    if arch not in MAC_ARCHS:  # no size model measured for it: counted at its start-up only, and said so
        return UNCALIBRATED, 0.0, data_bytes
    macs = macs_per_row(arch, params, n_in, n_out)
    rows = epochs * (3 * n_fit + n_valid) + sizes.n_test
    return f"train:{arch}", rows * macs / 1e9, data_bytes  # GMACs


def job_work(config: dict, job: PlannedJob, sizes: Sizes) -> tuple[str, float, float]:
    """(cost class, size in the class's work unit, bytes of the tables it holds)."""
    n_all = sizes.n_train + sizes.n_test
    raw_bytes = 4.0 * n_all * sizes.n_features
    if job.rule == "prepare":
        return "prepare", n_all * sizes.n_features / 1e6, raw_bytes
    if job.rule == "folds":
        return "folds", sizes.n_train * N_SCORED / 1e6, 4.0 * sizes.n_train * N_SCORED
    if job.rule == "features":
        spec = config["features"][job.wildcards["fset"]]
        return "features", feature_work(spec, sizes) / 1e6, 4.0 * n_all * feature_set_width(spec, sizes) * 3
    if job.rule == "feature_map":
        spec = config["feature_maps"][job.wildcards["fmap"]]
        width = feature_set_width(config["features"][spec["features"]], sizes)
        # t-SNE of `width` points whose coordinates are the training rows: pairwise distances dominate
        return "feature_map", width * width * sizes.n_train / 1e9, 4.0 * sizes.n_train * width * 2
    if job.rule == "train":
        cls, work, data_bytes = train_work(config, job.model, sizes)
        return cls, work, data_bytes
    if job.rule == "tune":
        t = config["tune"][job.wildcards["study"]]
        base = t["model"]
        k = int(config["folds"][config["models"][base]["folds"]]["k"])
        n_folds = len(t.get("folds", [])) or k
        cls, work, data_bytes = train_work(config, base, sizes)
        return "tune", work * n_folds * int(t.get("n_trials", 20)), data_bytes
    if job.rule == "collect":
        m = config["models"][job.wildcards["model"]]
        n_jobs = len(model_jobs(config, job.wildcards["model"]))
        return "collect", n_jobs * n_all * _targets(m) / 1e6, 4.0 * n_all * _targets(m) * 3
    if job.rule == "blend":
        members = blend_members(config)
        trials = int(config["blend"].get("n_trials", 200)) if "optuna_tpe" in config["blend"].get("methods", []) else 0
        return "blend", len(members) * n_all * N_SCORED * (1 + trials / 10) / 1e6, 4.0 * len(members) * n_all * N_SCORED
    if job.rule == "submission":
        return "submission", sizes.n_test * N_SCORED / 1e6, 4.0 * sizes.n_test * N_SCORED * 3
    if job.rule == "report":
        n_models = len(config["models"])
        n_train_jobs = sum(len(model_jobs(config, m)) for m in config["models"])
        return "report", (n_models * n_all * N_SCORED / 1e6 + n_train_jobs), 4.0 * n_models * n_all * N_SCORED
    raise ValueError(f"plan: no size model for rule {job.rule}")


# --------------------------------------------------------------------------- calibration

#: start-up seconds, seconds per work unit on one thread, base peak RSS (MB) and RSS per MB of table data,
#: per cost class; a job with t threads runs its work ``speedup(t)`` times faster. Fitted by
#: :func:`calibrate` on measured runs (see the comment on the values).
# >>> calibration values (written by the fit; see the comment)
# Fitted on 2026-12-01 on this project's 2-vCPU AMD EPYC machine (23 GB RAM), otherwise idle, by
# moastack.plan.calibrate on the last of three cold demo runs (config.yaml: 4,000 x 875 synthetic rows,
# one thread per fold job, `snakemake --cores 2`; benchmarks/demo_time.py --repeats 3: 364.5, 354.7,
# 361.7 s wall): all 57 of its jobs, wall times as measured (`--idle`). One data size only: start-ups
# come from the cheapest jobs, rates from each class's jobs' sizes (simple_nn: five models of 2 sizes).
# train:tabnet and train:resnet2h never ran in the demo: their rates come from
# `moastack plan --probe --configfile configs/winner.yaml` (one epoch at 23,814 rows, one thread, CPU
# time): tabnet 6.69 s, resnet2h 2.62 s per epoch; their start-up and
# memory are simple_nn's. The same probe's simple_nn epoch (12.3 s CPU, nn3_stage1 at full size)
# gives 0.03077 s/GMAC on one thread against the demo's 0.01381 (kept; the NN rates are uncertain by
# that factor 2.2 at full size: the demo's small matrices stay in cache).
CALIBRATION: dict[str, dict[str, float]] = {
    'blend': {'startup': 0.88, 'rate': 0.4214, 'mem_base': 119.3, 'mem_per_mb': 10.77, 'points': 1},
    'collect': {'startup': 0.113, 'rate': 0.3469, 'mem_base': 265.0, 'mem_per_mb': 0.1692, 'points': 2},
    'feature_map': {'startup': 0.88, 'rate': 1.843, 'mem_base': 119.3, 'mem_per_mb': 8.998, 'points': 1},
    'features': {'startup': 1.804, 'rate': 0.6689, 'mem_base': 119.3, 'mem_per_mb': 4.375, 'points': 2},
    'folds': {'startup': 0.88, 'rate': 0.9102, 'mem_base': 119.3, 'mem_per_mb': 36.33, 'points': 1},
    'prepare': {'startup': 0.88, 'rate': 0.1737, 'mem_base': 119.3, 'mem_per_mb': 7.567, 'points': 1},
    'report': {'startup': 0.88, 'rate': 0.04084, 'mem_base': 119.3, 'mem_per_mb': 3.841, 'points': 1},
    'submission': {'startup': 0.88, 'rate': 0.0, 'mem_base': 119.3, 'mem_per_mb': 0.0, 'points': 1},
    'train:deepinsight': {'startup': 0.88, 'rate': 0.07029, 'mem_base': 119.3, 'mem_per_mb': 52.67, 'points': 1},
    'train:prior': {'startup': 0.88, 'rate': 7.282e-07, 'mem_base': 119.3, 'mem_per_mb': 8.222, 'points': 1},
    'train:resnet2h': {'startup': 7.235, 'rate': 0.03954, 'mem_base': 979.1, 'mem_per_mb': 3.695, 'points': 0},
    'train:simple_nn': {'startup': 7.235, 'rate': 0.01404, 'mem_base': 979.1, 'mem_per_mb': 3.695, 'points': 4},
    'train:tabnet': {'startup': 7.235, 'rate': 0.2078, 'mem_base': 979.1, 'mem_per_mb': 3.695, 'points': 0},
}
DISPATCH_SECONDS = 0.81  # (measured wall - list schedule of the measured job times) / jobs: (361.7 - 315.4) / 57 s
# <<< calibration values
#: each thread beyond the first adds this much speed (assumed, not fitted: torch's and BLAS's scaling on
#: 2-4 threads for these small matrices)
PARALLEL_EFFICIENCY = 0.5
#: GPU time of the DeepInsight CNNs: seconds per image-epoch (one row rendered, forwarded and back-propagated
#: in training or forwarded in validation, per epoch), per backbone when measured. NOT MEASURED HERE (no GPU
#: was lent to this project's sessions): taken from the winners' "12-25 hours per model for 10 folds on
#: two 2080 Ti GPUs" (shared REFERENCE.md, DeepInsight CNNs) as 2 GPUs x 18.5 h = 133,200 GPU-seconds for
#: 10 folds x (35 epochs x 23,814 rows + 3,982 test rows) = 8.37 M image-epochs -> 0.0159 s each, on a
#: 2080 Ti-class GPU, for either backbone. `moastack plan --gpu-json` replaces it with benchmarks/gpu.py's
#: measured s/epoch per backbone.
GPU_RATE: dict[str, Any] = {"startup": 30.0, "per_image": 0.0159, "backbones": {},
                            "source": "winners' 12-25 h per model on two 2080 Ti (not measured here)"}
CALIBRATION_NOTE = (
    "calibration: three cold demo runs on an idle 2-vCPU AMD EPYC (2026-12-01; the last one fitted), "
    "tabnet/resnet2h from a one-epoch probe at 23,814 rows; umap/factor_analysis/kmeans step costs and "
    "the GPU rate (winners' 2080 Ti figure) are not measured. Full epochs (no early stopping)."
)


#: archs whose train cost is priced by multiply-adds per row (calibrated classes train:<arch>)
MAC_ARCHS = ("simple_nn", "resnet2h", "tabnet")
#: the cost class of archs without a measured size model (random_forest, the 1-D CNNs, the classic models)
UNCALIBRATED = "train:uncalibrated"


def _rate(cls: str) -> dict[str, float]:
    if cls in CALIBRATION:
        return CALIBRATION[cls]
    if cls == UNCALIBRATED:
        return {**CALIBRATION.get("train:prior", {"startup": 5.0, "mem_base": 1000, "mem_per_mb": 3.0}), "rate": 0.0}
    if cls.startswith("train:"):
        return CALIBRATION.get("train:simple_nn", {"startup": 5.0, "rate": 1.0, "mem_base": 1000, "mem_per_mb": 3.0})
    return {"startup": 3.0, "rate": 0.0, "mem_base": 900, "mem_per_mb": 3.0}


def gpu_rate_from_json(path: str | Path) -> dict[str, Any]:
    """GPU constants from ``benchmarks/gpu.py --out``: seconds per image-epoch per backbone (AMP as measured
    with AMP on, which the winner preset uses), from the steady epoch's seconds over the rows it covered."""
    import json

    data = json.loads(Path(path).read_text())
    rows = [r for r in data.get("measured", {}).get("deepinsight", []) if r.get("amp")]
    if not rows:
        raise ValueError(f"{path}: no DeepInsight measurement with AMP on (was it run on a CUDA device?)")
    backbones = {r["backbone"]: r["s_per_epoch"] / r["rows"] for r in rows}
    return {"startup": 30.0, "per_image": statistics.fmean(backbones.values()), "backbones": backbones,
            "source": f"benchmarks/gpu.py on {data.get('device', '?')} ({data.get('date', '?')})"}


def _gpu_seconds(config: dict, job: PlannedJob, sizes: Sizes, gpu_rate: dict[str, Any]) -> float:
    m = config["models"][job.model]
    backbone = str((m.get("params") or {}).get("backbone", "resnet10t")).split(".")[0]  # no pretrained tag
    measured = gpu_rate.get("backbones", {})
    # tf_efficientnet_b3 is efficientnet_b3 with TensorFlow's padding: what gpu.py times stands for both
    per_image = measured.get(backbone, measured.get(backbone.removeprefix("tf_"), gpu_rate["per_image"]))
    images = _epochs(m["arch"], m) * sizes.n_train + sizes.n_test
    return gpu_rate["startup"] + per_image * images


def estimate(config: dict, jobs: list[PlannedJob], sizes: Sizes, gpu_rate: dict[str, Any] | None = None) -> None:
    """Fill each job's ``seconds`` and ``mem_mb`` (in place)."""
    gpu_rate = gpu_rate or GPU_RATE
    for job in jobs:
        cls, work, data_bytes = job_work(config, job, sizes)
        job.cost_class, job.size, job.data_bytes = cls, work, data_bytes
        c = _rate(cls if job.rule != "tune" else f"train:{config['models'][config['tune'][job.wildcards['study']]['model']]['arch']}")
        if job.gpu and cls == "train:deepinsight":
            job.seconds = _gpu_seconds(config, job, sizes, gpu_rate)
        else:
            job.seconds = c["startup"] + c["rate"] * work / speedup(job.threads)
        job.mem_mb = c["mem_base"] + c["mem_per_mb"] * data_bytes / 1e6


# --------------------------------------------------------------------------- schedule


@dataclass
class Schedule:
    wall: float
    critical_path: float
    critical_jobs: list[str]


def critical_path(jobs: list[PlannedJob], seconds: dict[str, float] | None = None) -> tuple[float, list[str]]:
    """Longest chain of dependent jobs by wall time: its length and its jobs, first to last."""
    by_key = {j.key: j for j in jobs}
    secs = seconds or {j.key: j.seconds for j in jobs}
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(key: str) -> tuple[float, list[str]]:
        if key not in memo:
            best: tuple[float, list[str]] = (0.0, [])
            for dep in by_key[key].deps:
                if dep in by_key:
                    cand = longest(dep)
                    if cand[0] > best[0]:
                        best = cand
            memo[key] = (best[0] + secs.get(key, 0.0), [*best[1], key])
        return memo[key]

    import sys

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(jobs) + 100))
    return max((longest(j.key) for j in jobs), key=lambda t: t[0], default=(0.0, []))


def simulate(jobs: list[PlannedJob], cores: int, gpus: int = 1, dispatch: float | None = None,
             seconds: dict[str, float] | None = None) -> float:
    """Wall time of a list schedule on ``cores`` cores and ``gpus`` GPUs: whenever resources free up,
    start the ready jobs that head the longest remaining chains (threads capped at ``cores``, as
    Snakemake does), each paying ``dispatch`` seconds of Snakemake's own time."""
    dispatch = DISPATCH_SECONDS if dispatch is None else dispatch
    secs = seconds or {j.key: j.seconds for j in jobs}
    by_key = {j.key: j for j in jobs}
    children: dict[str, list[str]] = defaultdict(list)
    waiting = {}
    for j in jobs:
        deps = [d for d in j.deps if d in by_key]
        waiting[j.key] = len(set(deps))
        for d in set(deps):
            children[d].append(j.key)
    # remaining chain length from each job to the end (priority)
    tail: dict[str, float] = {}
    for j in reversed(_topological(jobs)):
        tail[j.key] = secs[j.key] + max((tail[c] for c in children[j.key]), default=0.0)
    ready = [(-tail[k], i, k) for i, k in enumerate(by_key) if waiting[k] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    free_cores, free_gpus, now = cores, gpus, 0.0
    done = 0
    while done < len(jobs):
        started = True
        while started:
            started = False
            skipped = []
            while ready:
                item = heapq.heappop(ready)
                job = by_key[item[2]]
                need = min(job.threads, cores)
                need_gpu = 1 if job.gpu else 0
                if need <= free_cores and need_gpu <= free_gpus:
                    free_cores -= need
                    free_gpus -= need_gpu
                    heapq.heappush(running, (now + dispatch + secs[job.key], job.key))
                    started = True
                else:
                    skipped.append(item)
            for item in skipped:
                heapq.heappush(ready, item)
        if not running:
            raise ValueError("plan: a job needs a GPU but --gpus is 0" if ready else "plan: cycle in the job graph")
        now, key = heapq.heappop(running)
        job = by_key[key]
        free_cores += min(job.threads, cores)
        free_gpus += 1 if job.gpu else 0
        done += 1
        for child in children[key]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (-tail[child], len(ready) + done * 10000, child))
    return now


def _topological(jobs: list[PlannedJob]) -> list[PlannedJob]:
    by_key = {j.key: j for j in jobs}
    order, seen = [], set()

    def visit(key: str) -> None:
        if key in seen:
            return
        seen.add(key)
        for d in by_key[key].deps:
            if d in by_key:
                visit(d)
        order.append(by_key[key])

    for j in jobs:
        visit(j.key)
    return order


# --------------------------------------------------------------------------- the preview


@dataclass
class Plan:
    config_name: str
    sizes: Sizes
    jobs: list[PlannedJob]
    cores: int
    gpus: int
    wall: float
    critical: float
    critical_jobs: list[str]
    model_archs: dict[str, str] = field(default_factory=dict)

    @property
    def uncalibrated(self) -> list[str]:
        """Archs of train jobs the size model cannot price."""
        return sorted({self.model_archs[j.model] for j in self.jobs if j.cost_class == UNCALIBRATED})

    def rows(self) -> list[dict[str, Any]]:
        """One row per rule, and per model for train: jobs, CPU hours, GPU hours, peak memory."""
        groups: dict[tuple[str, str], list[PlannedJob]] = defaultdict(list)
        for j in self.jobs:
            groups[(j.rule, j.model or "")].append(j)
        order = ["prepare", "folds", "features", "feature_map", "tune", "train", "collect", "blend", "submission",
                 "report"]
        out = []
        for (rule, model), js in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), 0)):
            cpu = sum(j.seconds * j.threads for j in js if not j.gpu) / 3600
            gpu = sum(j.seconds for j in js if j.gpu) / 3600
            arch = self.model_archs.get(model, "") if model else ""
            out.append({"rule": rule, "model": model, "arch": arch, "jobs": len(js),
                        "threads": max(j.threads for j in js), "median_job_s": statistics.median(j.seconds for j in js),
                        "cpu_h": cpu, "gpu_h": gpu, "peak_mem_mb": max(j.mem_mb for j in js),
                        "device": "cuda" if any(j.gpu for j in js) else "cpu"})
        return out

    def totals(self) -> dict[str, float]:
        return {
            "jobs": len(self.jobs) + 1,  # + all
            "cpu_h": sum(j.seconds * j.threads for j in self.jobs if not j.gpu) / 3600,
            "gpu_h": sum(j.seconds for j in self.jobs if j.gpu) / 3600,
            "peak_mem_mb": max(j.mem_mb for j in self.jobs),
            "wall_s": self.wall,
            "critical_path_s": self.critical,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config_name, "sizes": vars(self.sizes), "cores": self.cores, "gpus": self.gpus,
                "rules": self.rows(), "totals": self.totals(), "critical_path": self.critical_jobs}

    def format(self) -> str:
        s = self.sizes
        lines = [f"moastack plan: {self.config_name} — {s.n_train:,} train rows, {s.n_test:,} test rows, "
                 f"{s.n_features} feature columns",
                 f"{'rule':<12} {'model':<22} {'arch':<12} {'jobs':>5} {'thr':>4} {'s/job':>8} {'CPU h':>8} "
                 f"{'GPU h':>7} {'peak GB':>8}"]
        for r in self.rows():
            lines.append(f"{r['rule']:<12} {r['model']:<22} {r['arch']:<12} {r['jobs']:>5} {r['threads']:>4} "
                         f"{r['median_job_s']:>8.1f} {r['cpu_h']:>8.3f} {r['gpu_h']:>7.2f} "
                         f"{r['peak_mem_mb'] / 1024:>8.2f}")
        t = self.totals()
        lines.append(f"{'total':<12} {'':<22} {'':<12} {t['jobs']:>5} {'':>4} {'':>8} {t['cpu_h']:>8.3f} "
                     f"{t['gpu_h']:>7.2f} {t['peak_mem_mb'] / 1024:>8.2f}   (jobs include `all`)")
        lines.append(f"estimated wall on {self.cores} cores, {self.gpus} GPU(s): {_hms(self.wall)}; "
                     f"critical path {_hms(self.critical)} ({len(self.critical_jobs)} jobs: "
                     f"{' → '.join(_short(k) for k in _squeeze(self.critical_jobs))})")
        if CALIBRATION_NOTE:
            lines.append(CALIBRATION_NOTE)
        if self.uncalibrated:
            lines.append(f"not priced (no measured size model; counted at job start-up only, so the totals are "
                         f"lower bounds): {', '.join(self.uncalibrated)}")
        return "\n".join(lines)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _short(key: str) -> str:
    return key.replace("train[model=", "train[").replace("collect[model=", "collect[")


def _squeeze(keys: list[str], keep: int = 12) -> list[str]:
    return keys if len(keys) <= keep else [*keys[: keep // 2], "…", *keys[-keep // 2:]]


def make_plan(config: dict, config_name: str = "config", rows: int | None = None, features: int | None = None,
              test_rows: int | None = None, cores: int = 2, gpus: int = 1,
              gpu_rate: dict[str, float] | None = None, background_load: float = 0.0) -> Plan:
    """The whole preview for a validated config. ``background_load``: runnable processes of *other* work on
    the machine (load average minus this run's); CPU jobs then get cores / (cores + load) of the CPU."""
    sizes = data_sizes(config, rows, features, test_rows)
    jobs = plan_jobs(config)
    estimate(config, jobs, sizes, gpu_rate)
    if background_load > 0:
        share = cores / (cores + background_load)
        for job in jobs:
            if not job.gpu:
                job.seconds /= share
    if any(j.gpu for j in jobs) and gpus < 1:
        gpus = 1
    wall = simulate(jobs, cores, gpus)
    crit, crit_jobs = critical_path(jobs)
    return Plan(config_name, sizes, jobs, cores, gpus, wall, crit, crit_jobs,
                {name: m["arch"] for name, m in config["models"].items()})


def load_and_plan(configfile: str | Path, **kwargs: Any) -> Plan:
    from moastack.config import load_config

    config = load_config(configfile)
    return make_plan(config, str(configfile), **kwargs)


# --------------------------------------------------------------------------- (re)calibration


def read_benchmarks(results: str | Path) -> dict[str, dict[str, float]]:
    """Every job's benchmark row under ``results/benchmarks``, keyed like :attr:`PlannedJob.key`."""
    import csv

    root = Path(results) / "benchmarks"
    out = {}
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root).with_suffix("").parts
        with open(tsv) as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        values = {k: float(v) for k, v in row.items() if k != "h:m:s" and v not in ("", "NA", "-")}
        if rel[0] == "models" and len(rel) == 4:
            key = f"train[model={rel[1]},seed={rel[2].removeprefix('seed')},fold={rel[3].removeprefix('fold')}]"
        elif rel[0] == "models" and len(rel) == 3 and rel[2] == "collect":
            key = f"collect[model={rel[1]}]"
        elif rel[0] == "folds":
            key = f"folds[scheme={rel[1]}]"
        elif rel[0] == "features":
            key = f"features[fset={rel[1]}]"
        elif rel[0] == "feature_maps":
            key = f"feature_map[fmap={rel[1]}]"
        elif rel[0] == "tune":
            key = f"tune[study={rel[1]}]"
        else:
            key = rel[0]
        out[key] = values
    return out


def _fit_line(points: list[tuple[float, float]], startup: float | None = None) -> tuple[float, float]:
    """Least squares y = a + b x with a, b >= 0 (a fixed when given)."""
    if not points:
        return (startup or 0.0, 0.0)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if startup is None and len({round(x, 9) for x in xs}) > 1:
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        b = max(0.0, sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx) if sxx else 0.0
        a = my - b * mx
        if a >= 0:
            return a, b
        startup = 0.0
    if startup is None:
        startup = min(ys)
    sx = sum(x * x for x in xs)
    b = max(0.0, sum(x * (y - startup) for x, y in zip(xs, ys)) / sx) if sx else 0.0
    return startup, b


def speedup(threads: int) -> float:
    """How much faster a job runs on ``threads`` threads than on one (a fixed parallel efficiency)."""
    return 1.0 + (max(int(threads), 1) - 1) * PARALLEL_EFFICIENCY


#: CPU utilisation (cpu_time / wall) below which a job counts as having waited for the CPU: the undisturbed
#: single-thread jobs of the calibration run (prepare, folds, features) used 0.70-0.97 of a core
UNDISTURBED_UTILISATION = 0.7


def uncontended_seconds(bench: dict[str, dict[str, float]], classes: dict[str, str],
                        idle: bool = False) -> dict[str, float]:
    """Each job's wall time as if it had had its cores to itself: ``min(s, cpu_time / u)``, where ``u`` is the
    CPU utilisation (cpu_time / s) of the least disturbed job of the same cost class in the run, at least
    :data:`UNDISTURBED_UTILISATION`. On a shared machine a job waits for the CPU (its wall time grows, its
    CPU time hardly does), so the CPU time it used measures its work better than its wall time. A run on an
    ``idle`` machine keeps its wall times: there some jobs use well under a core by nature (a 1-thread
    DeepInsight job used 0.4 of one, with the other core busy with another job), which the correction would
    take for waiting."""
    if idle:
        return {key: row["s"] for key, row in bench.items()}
    util: dict[str, float] = defaultdict(lambda: UNDISTURBED_UTILISATION)
    for key, row in bench.items():
        if key in classes and row.get("s", 0) > 0 and "cpu_time" in row:
            util[classes[key]] = max(util[classes[key]], row["cpu_time"] / row["s"])
    return {key: min(row["s"], row["cpu_time"] / util[classes.get(key, "")]) if "cpu_time" in row else row["s"]
            for key, row in bench.items()}


def calibration_points(runs: list[tuple[dict, str | Path]], idle: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Per cost class, one point per distinct job size of each run: the size in single-thread work units,
    the fastest uncontended wall time (:func:`uncontended_seconds`) of the jobs of that size (the folds of
    one model are the same size; the least disturbed one counts) and their largest peak RSS."""
    groups: dict[tuple[str, int, float], list[tuple[PlannedJob, dict[str, float], float]]] = defaultdict(list)
    for i, (config, results) in enumerate(runs):
        sizes = data_sizes(config)
        bench = read_benchmarks(results)
        jobs = [j for j in plan_jobs(config) if j.key in bench]
        for job in jobs:
            job.cost_class, job.size, job.data_bytes = job_work(config, job, sizes)
        alone = uncontended_seconds(bench, {j.key: j.cost_class for j in jobs}, idle=idle)
        for job in jobs:
            cls, work = job.cost_class, job.size
            groups[(cls, i, round(work / speedup(job.threads), 9))].append((job, bench[job.key], alone[job.key]))
    points: dict[str, list[dict[str, Any]]] = defaultdict(list)
    best_util: dict[str, float] = defaultdict(float)
    for (cls, _, _), members in groups.items():
        for _, row, _ in members:
            if row.get("s", 0) > 0 and "cpu_time" in row:
                best_util[cls] = max(best_util[cls], row["cpu_time"] / row["s"])
    for (cls, run, x), members in sorted(groups.items()):
        fastest = min(members, key=lambda m: m[2])
        row = fastest[1]
        util = row["cpu_time"] / row["s"] if row.get("s", 0) > 0 and "cpu_time" in row else best_util[cls]
        points[cls].append({"x": x, "s": fastest[2], "s_measured": row["s"], "run": run,
                            "job": fastest[0].key, "n": len(members),
                            "data_mb": max(m[0].data_bytes for m in members) / 1e6,
                            "rss": max(m[1]["max_rss"] for m in members),
                            # under half its class's best CPU share: multi-threaded jobs then also burn CPU
                            # spinning, so even the CPU time overstates the work
                            "disturbed": not idle and util < 0.5 * best_util[cls]})
    return points


def _fit_class(pts: list[tuple[float, float]], floor: float) -> tuple[float, float]:
    """y = a + b x: a free least-squares fit when the sizes span a factor 1.5 or more, otherwise the
    intercept is ``floor`` (the run's cheapest job: start-up only) and the slope goes through the points."""
    xs = [x for x, _ in pts]
    if min(xs) > 0 and max(xs) / min(xs) >= 1.5:
        a, b = _fit_line(pts)
        if b > 0 and a <= max(floor, min(y for _, y in pts)):
            return a, b
    a = min(floor, min(y for _, y in pts))
    return _fit_line(pts, startup=a)


def calibrate(runs: list[tuple[dict, str | Path]], idle: bool = False) -> dict[str, dict[str, float]]:
    """Fit each cost class's start-up, single-thread rate and memory constants on measured runs:
    ``(config, results)`` pairs (the config validated, the results folder holding ``benchmarks/``); ``idle``:
    the runs had the machine to themselves (wall times kept, see :func:`uncontended_seconds`)."""
    points = calibration_points(runs, idle=idle)
    floor_s = min(p["s"] for pts in points.values() for p in pts)  # the cheapest job: start-up alone
    floor_mb = min(p["rss"] for pts in points.values() for p in pts)  # the imports' footprint
    out = {}
    for cls, pts in points.items():
        timed = [p for p in pts if not p["disturbed"]] or pts  # disturbed points only when nothing else
        startup, rate = _fit_class([(p["x"], p["s"]) for p in timed], floor_s)
        mem_base, mem_rate = _fit_class([(p["data_mb"], p["rss"]) for p in pts], floor_mb)
        out[cls] = {"startup": round(startup, 3), "rate": float(f"{rate:.4g}"), "mem_base": round(mem_base, 1),
                    "mem_per_mb": float(f"{mem_rate:.4g}"), "points": len(pts)}
    return out


def dispatch_seconds(config: dict, results: str | Path, wall: float, cores: int) -> float:
    """Snakemake's own time per job in a finished run: (measured wall - the list schedule of the measured job
    times) / jobs."""
    bench = read_benchmarks(results)
    jobs = [j for j in plan_jobs(config) if j.key in bench]
    secs = {j.key: bench[j.key]["s"] for j in jobs}
    return max(0.0, (wall - simulate(jobs, cores, dispatch=0.0, seconds=secs)) / max(len(jobs), 1))


def measured_schedule(config: dict, results: str | Path) -> dict[str, Any]:
    """Per-rule job counts, sum and median wall seconds, peak RSS and the critical path of a finished run."""
    bench = read_benchmarks(results)
    jobs = [j for j in plan_jobs(config) if j.key in bench]
    secs = {j.key: bench[j.key]["s"] for j in jobs}
    per_rule: dict[str, list[PlannedJob]] = defaultdict(list)
    for j in jobs:
        per_rule[j.rule].append(j)
    for j in jobs:
        if j.rule == "train":
            per_rule[f"  train {j.model}"].append(j)

    table = {rule: {"jobs": len(js), "sum_s": sum(secs[j.key] for j in js),
                    "median_s": statistics.median(secs[j.key] for j in js),
                    "max_rss_mb": max(bench[j.key]["max_rss"] for j in js)} for rule, js in per_rule.items()}
    length, chain = critical_path(jobs, secs)
    return {"rules": table, "critical_path_s": length, "critical_path": chain, "jobs": len(jobs)}


def with_config_copy(config: dict) -> dict:
    return copy.deepcopy(config)


# --------------------------------------------------------------------------- probe: one epoch at full size


def probe(config: dict, sizes: Sizes, archs: tuple[str, ...] = ("simple_nn", "tabnet", "resnet2h"),
          epochs: int = 1, log: Any = print) -> dict[str, dict[str, float]]:
    """Time ``epochs`` epoch(s) of the first model of each of ``archs`` in ``config`` at ``sizes`` on random
    data of the model's input width, on ONE thread, by the process's CPU time (robust to a shared machine:
    waiting for the CPU costs wall time, not CPU time). Returns per arch the single-thread rate in seconds per
    work unit (GMACs, as :func:`train_work` counts them), for :data:`CALIBRATION`. Imports torch."""
    import logging
    import time

    import numpy as np

    from moastack.models.base import FitContext
    from moastack.models.registry import build_model

    out = {}
    for arch in archs:
        name = next((n for n, m in config["models"].items() if m["arch"] == arch and "init_from" not in m), None)
        if name is None:
            continue
        m = copy.deepcopy(config["models"][name])
        params = dict(m.get("params", {}) or {})
        if arch == "tabnet":
            params["max_epochs"] = epochs
        else:
            params["epochs"] = epochs
        k = int(config["folds"][m["folds"]]["k"])
        keep = 1.0 - (CONTROL_FRACTION if m.get("drop_controls", True) else 0.0)
        n_fit, n_valid = int(sizes.n_train * (k - 1) / k * keep), int(sizes.n_train / k)
        n_in, n_out = model_input_width(config, name, sizes), _targets(m)
        rng = np.random.default_rng(0)
        X = rng.normal(size=(n_fit + n_valid, n_in)).astype(np.float32)
        Y = (rng.random((n_fit + n_valid, n_out)) < 0.005).astype(np.float32)
        model = build_model(arch, params)
        if hasattr(model, "feature_names_in_"):
            model.feature_names_in_ = [f"pca_g_{j}" if j < 50 else f"g-{j}" for j in range(n_in)]
        context = FitContext(seed=0, device="cpu", threads=1, logger=logging.getLogger("moastack.plan.probe"))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        model.fit(X[:n_fit], Y[:n_fit], X[n_fit:], Y[n_fit:], context)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        macs = macs_per_row(arch, params, n_in, n_out)
        work = epochs * (3 * n_fit + n_valid) * macs / 1e9
        out[f"train:{arch}"] = {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "gmacs": round(work, 2),
                                "rate": float(f"{cpu / work:.4g}"), "model": name, "rows": n_fit + n_valid,
                                "width": n_in, "epochs": epochs}
        log(f"probe {arch} ({name}): {n_fit} + {n_valid} rows x {n_in} -> {n_out}, {epochs} epoch(s), 1 thread: "
            f"{cpu:.1f} s CPU ({wall:.1f} s wall), {work:.1f} GMACs -> {cpu / work:.4g} s per GMAC")
    return out
