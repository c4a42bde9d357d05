"""Blend weights searched on out-of-fold predictions.

Weights are non-negative and sum to 1 (a convex blend). Two searches, as the winners used: scipy's
SLSQP with the analytic gradient of the OOF mean log loss, and Optuna's TPE sampler over unnormalised
weights, which optimises the run's metric itself (``data.metric``). For a rank metric such as ROC-AUC,
SLSQP's log loss is a smooth surrogate (a step-shaped AUC has no gradient to follow) and TPE is the
direct search; both results are written, the first listed method's weights are applied. Members must share one fold scheme: OOF predictions of different
assignments are not comparable row by row.

A regression task (``metric="mrrmse"``) blends by MRRMSE itself: :class:`MRRMSEObjective` gives SLSQP the
exact value and analytic gradient and TPE the same value; blended predictions are not clipped to [0, 1].

A classification blend also chooses, once its weights are fixed, each target's decision threshold (F1- or
MCC-optimal on the blend's OOF predictions; ``blend.threshold_metric``) and stores it in ``weights.json``
for ``moastack predict --labels`` and the report.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize

from moastack.metrics import EPS, greater_is_better, metric_value, optuna_direction
from moastack.task import task_of_metric

log = logging.getLogger(__name__)

METHODS = ("slsqp", "optuna_tpe")


class BlendObjective:
    """Mean log loss of a weighted sum of member predictions, with its gradient.

    Cells with a missing label get weight 0; every target counts equally, as in the metric.
    """

    def __init__(self, y: np.ndarray, members: list[np.ndarray]) -> None:
        y = np.asarray(y, dtype=np.float64)
        labelled = ~np.isnan(y)
        counts = labelled.sum(axis=0)
        n_targets = int((counts > 0).sum())
        per_target = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0) / max(n_targets, 1)
        self.cell_weight = (labelled * per_target[None, :]).ravel()
        self.y = np.where(labelled, y, 0.0).ravel()
        self.P = np.stack([np.asarray(m, dtype=np.float64).ravel() for m in members])

    def __call__(self, w: np.ndarray) -> float:
        p = np.clip(w @ self.P, EPS, 1 - EPS)
        cell = -(self.y * np.log(p) + (1 - self.y) * np.log1p(-p))
        return float(cell @ self.cell_weight)

    def gradient(self, w: np.ndarray) -> np.ndarray:
        raw = w @ self.P
        p = np.clip(raw, EPS, 1 - EPS)
        d = -(self.y / p - (1 - self.y) / (1 - p)) * self.cell_weight
        d[(raw <= EPS) | (raw >= 1 - EPS)] = 0.0
        return self.P @ d


class MetricObjective:
    """Any metric of :mod:`moastack.metrics` of the weighted blend (no gradient: for TPE)."""

    def __init__(self, y: np.ndarray, members: list[np.ndarray], metric: str) -> None:
        self.y, self.members, self.metric = y, members, metric

    def __call__(self, w: np.ndarray) -> float:
        return metric_value(self.metric, self.y, apply_weights(w, self.members))


class MRRMSEObjective:
    """MRRMSE of the weighted sum of member predictions, with its analytic gradient.

    For weights w the blend's error on row i is e_i = Σ_m w_m D_mi + (Σ_m w_m − 1) y_i, with the members'
    residuals D_mi = P_mi − y_i. With u = (w, Σw − 1) and the per-row Gram matrix G_i of (D_1i, ..., D_Mi, y_i),
    ||e_i||² = uᵀ G_i u, so one evaluation costs O(n·M²) whatever the number of targets, and the Gram of
    residuals (not of raw predictions) keeps the small errors of good members free of cancellation. With
    r_i = sqrt(uᵀ G_i u / T):

        MRRMSE(w) = mean_i r_i,      ∂MRRMSE/∂w_m = mean_i [(G_i u)_m + (G_i u)_{M+1}] / (T · r_i)

    (r_i floored at a tiny value, where the gradient of a perfect row is 0 anyway). The value equals
    :func:`moastack.metrics.mrrmse` of :func:`apply_weights` to float64 round-off.
    """

    def __init__(self, y: np.ndarray, members: list[np.ndarray]) -> None:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"MRRMSE blend needs 2-D targets, got shape {y.shape}")
        self.n, self.t = y.shape
        vectors = [np.asarray(m, dtype=np.float64) - y for m in members] + [y]
        for v in vectors[:-1]:
            if v.shape != y.shape:
                raise ValueError(f"member predictions shaped {v.shape}, targets {y.shape}")
        k = len(vectors)
        self.G = np.empty((self.n, k, k))
        for a in range(k):
            for b in range(a, k):
                self.G[:, a, b] = self.G[:, b, a] = np.einsum("ij,ij->i", vectors[a], vectors[b])
        self.floor = 1e-12

    def _u(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w, dtype=np.float64)
        return np.append(w, w.sum() - 1.0)

    def rows(self, w: np.ndarray) -> np.ndarray:
        """Each row's RMSE under weights ``w``."""
        u = self._u(w)
        sq = np.einsum("a,iab,b->i", u, self.G, u)
        return np.sqrt(np.maximum(sq, 0.0) / self.t)

    def __call__(self, w: np.ndarray) -> float:
        return float(self.rows(w).mean()) if self.n else float("nan")

    def gradient(self, w: np.ndarray) -> np.ndarray:
        u = self._u(w)
        Gu = self.G @ u  # (n, M + 1)
        r = np.maximum(self.rows(w), self.floor)
        per_row = (Gu[:, :-1] + Gu[:, -1:]) / (self.t * r[:, None])
        return per_row.mean(axis=0)


#: metrics with a smooth objective of their own (with a gradient, for SLSQP); the others (ranking
#: metrics) are searched by SLSQP on the log loss as a surrogate, and by TPE on the metric itself
SMOOTH_OBJECTIVES = {"log_loss": BlendObjective, "mrrmse": MRRMSEObjective}


def make_objective(y: np.ndarray, members: list[np.ndarray], metric: str = "log_loss"):
    """The SLSQP objective of a run's metric: the metric itself when it is smooth, else the log loss."""
    return SMOOTH_OBJECTIVES.get(metric, BlendObjective)(y, members)


def search_slsqp(objective: BlendObjective, n_members: int) -> np.ndarray:
    """Convex weights by SLSQP from the uniform blend."""
    x0 = np.full(n_members, 1.0 / n_members)
    result = minimize(
        objective, x0, jac=objective.gradient, method="SLSQP",
        bounds=[(0.0, 1.0)] * n_members,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    if not result.success:
        log.warning("SLSQP did not converge: %s", result.message)
    w = result.x.copy()
    w[w < 1e-9] = 0.0  # round-off from the bound, not a real contribution
    return normalise(w)


def search_optuna_tpe(objective, n_members: int, n_trials: int, seed: int, direction: str = "minimize") -> np.ndarray:
    """Convex weights by Optuna's TPE sampler (seeded), sampling raw weights and normalising."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.enqueue_trial({f"w{i}": 1.0 for i in range(n_members)})

    def trial_loss(trial) -> float:
        raw = np.array([trial.suggest_float(f"w{i}", 0.0, 1.0) for i in range(n_members)])
        return objective(normalise(raw))

    study.optimize(trial_loss, n_trials=n_trials)
    best = np.array([study.best_params[f"w{i}"] for i in range(n_members)])
    return normalise(best)


def normalise(w: np.ndarray) -> np.ndarray:
    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def drop_small(w: np.ndarray, threshold: float) -> np.ndarray:
    """Zero the weights under ``threshold`` and renormalise (the heaviest member always stays)."""
    w = np.where(w >= threshold, w, 0.0)
    if w.sum() == 0:
        raise ValueError("blend: every weight fell under drop_threshold")
    return normalise(w)


def search_weights(
    y: np.ndarray,
    members: list[np.ndarray],
    method: str,
    *,
    n_trials: int = 200,
    seed: int = 0,
    drop_threshold: float = 0.0,
    metric: str = "log_loss",
) -> np.ndarray:
    """Weights for ``members`` (arrays shaped like ``y``) by ``method``; TPE optimises ``metric``."""
    objective = make_objective(y, members, metric)
    if method == "slsqp":
        w = search_slsqp(objective, len(members))
    elif method == "optuna_tpe":
        tpe_objective, direction = objective, "minimize"
        if metric not in SMOOTH_OBJECTIVES:
            tpe_objective = MetricObjective(y, members, metric)
            direction = optuna_direction(metric)
        w = search_optuna_tpe(tpe_objective, len(members), n_trials, seed, direction)
    else:
        raise ValueError(f"unknown blend method {method!r}; known: {', '.join(METHODS)}")
    if drop_threshold > 0:
        w = drop_small(w, min(drop_threshold, w.max()))
    return w


def apply_weights(weights: np.ndarray, members: list[np.ndarray]) -> np.ndarray:
    return np.tensordot(np.asarray(weights), np.stack([np.asarray(m, dtype=np.float64) for m in members]), axes=1)


def check_same_scheme(schemes: dict[str, str]) -> str:
    """Refuse members from different fold schemes, naming them."""
    distinct = sorted(set(schemes.values()))
    if len(distinct) > 1:
        by_scheme = {s: [m for m, v in schemes.items() if v == s] for s in distinct}
        raise ValueError(
            "blend: members come from different fold schemes "
            + "; ".join(f"{s}: {', '.join(ms)}" for s, ms in by_scheme.items())
            + ". Their OOF losses are not comparable (each scheme holds out different rows), so weights "
            "searched on their mix would be meaningless; blend one scheme at a time."
        )
    return distinct[0]


def blend_thresholds(
    y: np.ndarray, blend_oof: np.ndarray, targets: list[str], metric: str, score: dict | None = None,
) -> dict:
    """Per-target decision thresholds maximising ``metric`` (f1 | mcc) on the blend's OOF predictions, the
    rows its weights were searched on: the F1/MCC at them are optimistic by that same leak, as usual
    (:mod:`moastack.thresholds`). Targets without a labelled positive are never called, and logged. The
    ROC-AUC / PR-AUC come from the blend's ``score`` record when it has them (not computed twice)."""
    from moastack.thresholds import NEVER, decision_thresholds

    per_target = (score or {}).get("per_target_all") or {}
    aucs = per_target if {"roc_auc", "pr_auc"} <= set(per_target) else None
    record = decision_thresholds(y, blend_oof, targets, metric, aucs=aucs)
    chosen = [v[metric] for v in record["targets"].values() if v[metric] is not None]
    log.info("blend thresholds: mean OOF %s %.4f at each target's %s-optimal threshold (%d targets)",
             metric, float(np.mean(chosen)) if chosen else float("nan"), metric, len(chosen))
    if record["never_called"]:
        log.warning("blend thresholds: %d target(s) without a labelled positive get threshold %.1f (never called) "
                    "and no F1/MCC: %s", len(record["never_called"]), NEVER, ", ".join(record["never_called"]))
    return record


def run_blend(
    members: dict[str, dict[str, str]], targets_path: str, cfg: dict, outputs: dict[str, str],
    metric: str = "log_loss",
) -> dict:
    """Search weights on OOF with every configured method, apply the first, write the outputs.

    For a classification task ``weights.json`` also holds ``thresholds``: per target the decision threshold
    maximising ``cfg["threshold_metric"]`` on the blend's OOF predictions (:func:`blend_thresholds`).

    ``members`` maps model name → {"oof", "test", "score"} paths of its collected outputs.
    """
    from moastack import io
    from moastack.columns import ID_COL
    from moastack.metrics import score_record
    from moastack.targets import prediction_frame

    names = list(members)
    scores = {m: io.read_json(p["score"]) for m, p in members.items()}
    scheme = check_same_scheme({m: s["folds_scheme"] for m, s in scores.items()})
    oofs = {m: io.read_parquet(p["oof"]) for m, p in members.items()}
    tests = {m: io.read_parquet(p["test"]) for m, p in members.items()}
    target_cols = [c for c in oofs[names[0]].columns if c != ID_COL]
    for m in names[1:]:
        if [c for c in oofs[m].columns if c != ID_COL] != target_cols:
            raise ValueError(f"blend: {m} predicts different targets than {names[0]}")
    truth = io.read_parquet(targets_path)
    train_ids = truth[ID_COL].to_numpy()
    y = truth[target_cols].to_numpy(dtype=np.float64)
    member_oof = [oofs[m].set_index(ID_COL).reindex(train_ids)[target_cols].to_numpy() for m in names]
    test_ids = tests[names[0]][ID_COL].to_numpy()
    member_test = [tests[m].set_index(ID_COL).reindex(test_ids)[target_cols].to_numpy() for m in names]

    methods = cfg.get("methods", ["slsqp"])
    threshold = float(cfg.get("drop_threshold", 0.0))
    task = task_of_metric(metric)
    objective = BlendObjective(y, member_oof) if task.probabilities else None
    results = {}
    for method in methods:
        w = search_weights(y, member_oof, method, n_trials=cfg.get("n_trials", 200),
                           seed=cfg.get("seed", 0), drop_threshold=threshold, metric=metric)
        results[method] = {"weights": {m: float(v) for m, v in zip(names, w)}}
        if objective is not None:  # the SLSQP objective, when it is not the metric itself
            results[method]["oof_log_loss"] = objective(w)
        results[method][f"oof_{metric}"] = metric_value(metric, y, apply_weights(w, member_oof))
        results[method]["dropped"] = [m for m, v in zip(names, w) if v == 0.0]
        log.info("blend %s: %s %.6f weights %s", method, metric, results[method][f"oof_{metric}"],
                 {m: round(v, 4) for m, v in results[method]["weights"].items()})
    applied = methods[0]
    w = np.array([results[applied]["weights"][m] for m in names])
    blend_oof = apply_weights(w, member_oof).astype(np.float32)
    blend_test = apply_weights(w, member_test).astype(np.float32)
    oof_frame = prediction_frame(train_ids, blend_oof, target_cols, task=task)
    weights = {"fold_scheme": scheme, "applied": applied, "metric": metric, "members": names, "methods": results}
    sign = -1.0 if greater_is_better(metric) else 1.0  # best member: lowest loss, highest AUC
    score = score_record(
        y, blend_oof, target_cols, metric=metric,
        model="blend", folds_scheme=scheme, method=applied,
        members={m: scores[m]["value"] for m in names},
        best_member=min(names, key=lambda m: sign * scores[m]["value"]),
    )
    if task.probabilities:  # a classification task: where to call each target, from the OOF rows as written
        weights["thresholds"] = blend_thresholds(y, oof_frame[target_cols].to_numpy(), target_cols,
                                                 cfg.get("threshold_metric", "f1"), score)
    io.write_json(weights, outputs["weights"])
    io.write_parquet(oof_frame, outputs["oof"])
    io.write_parquet(prediction_frame(test_ids, blend_test, target_cols, task=task), outputs["test"])
    io.write_json(score, outputs["score"])
    return score
