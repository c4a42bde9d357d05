"""The one training loop for every torch model, on in-memory tabular data.

A lish-moa fold is small (≈ 20k × 1k floats), so the whole fold lives on the device as one float32
tensor. Each epoch draws one permutation, gathers the rows into a reused buffer once, and feeds
contiguous slices as batches: no Dataset/DataLoader, no per-sample Python, no per-batch host sync.
That is what makes seeds × folds × models affordable on a 2-core CPU.

A sparse fold (a feature set with ``sparse_fingerprint`` steps: 12k rows × 200k count columns would be
9.6 GB dense) stays a scipy CSR matrix on the host (:class:`SparseRows`): each epoch's permutation is
read back once, and every minibatch (and every evaluation / inference batch) is gathered and densified
on its own, then copied to the device. Only one batch is ever dense.

:func:`train_module` owns how training runs (as Lightning's Trainer does): epochs, the batch order, an
optional per-epoch input transform (DeepInsight's swap noise), the loss, mixed precision on CUDA,
gradient clipping, the optimizer and its scheduler (stepped per batch or per epoch), early stopping
with best-weight restore, and the history. An architecture supplies its module, its loss and its
validation score (hooks), nothing more. :class:`TorchTabularModel` wraps a module builder into the
:class:`TabularModel` interface for the BCE-trained archs, so each only says how to build its module.
"""

from __future__ import annotations

import ctypes
import math
import random
import sys
import time
from abc import abstractmethod
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from moastack.models.base import FitContext, TabularModel
from moastack.models.losses import (
    SmoothBCEWithLogits,
    balanced_pos_weight,
    bce_with_logits,
    label_mask,
    log_shrink_pos_weight,
)
from moastack.targets import prior_logit

SCHEDULERS = ("onecycle", "plateau", "cosine", "multistep", "none")
#: what early stopping, best-weight restore and ReduceLROnPlateau watch: the validation rows' BCE against
#: their 0/1 labels, or against the labels smoothed (and clipped) as the training targets are
MONITORS = ("bce", "smoothed_bce")
OPTIMIZERS = ("adam", "adamw", "radam")
#: ``pos_weight`` -> each target's weight of its positive cells, from the training targets
POS_WEIGHTS = {None: None, "balanced": balanced_pos_weight, "log_shrink": log_shrink_pos_weight}
AMP_DTYPES = {"auto": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
              "fp16": torch.float16, "float16": torch.float16}


@dataclass
class TrainConfig:
    """Optimisation settings; defaults are the winners' shallow-NN recipe (see REFERENCE.md)."""

    epochs: int = 25
    batch_size: int = 256
    drop_last: bool = False  # leave out the last, incomplete batch of each epoch (pytorch-tabnet's default)
    lr: float = 5e-4  # the optimizer's lr for scheduler none|plateau|cosine; OneCycle starts at max_lr / div_factor
    weight_decay: float = 1e-5
    optimizer: str = "adam"  # adam | adamw | radam
    adam_eps: float = 1e-8  # the Adam-family optimizers' epsilon (torch's 1e-8; Keras' Adam 1e-7)
    # radam: weight decay as torch_optimizer's RAdam (the winners' DeepInsight CNNs) applies it, each step
    # multiplying the weights by 1 - lr * weight_decay, not as an L2 term added to the gradient (torch's)
    decoupled_weight_decay: bool = False
    scheduler: str = "onecycle"  # onecycle | plateau | cosine | multistep | none
    t_max: int | None = None  # cosine: half-period in epochs, stepped per epoch; None: the whole run, per batch
    grad_clip: float | None = None  # clip the gradients' global norm (None: off)
    max_lr: float = 1e-2  # OneCycleLR
    pct_start: float = 0.1
    div_factor: float = 1e3
    plateau_factor: float = 0.5  # ReduceLROnPlateau, stepped on the validation loss
    plateau_patience: int = 4  # torch's: the lr drops after patience + 1 stale epochs (Keras' after patience)
    plateau_threshold: float = 1e-4  # ReduceLROnPlateau's threshold: the improvement an epoch must make ...
    plateau_threshold_mode: str = "rel"  # ... rel: relative to the best loss (torch's) | abs: absolute (Keras' min_delta)
    min_lr: float = 0.0  # ReduceLROnPlateau's floor
    milestones: tuple[int, ...] | None = None  # multistep: the epochs after which the lr is multiplied ...
    step_factor: float = 0.1  # ... by this (MultiStepLR's gamma), stepped per epoch
    label_smoothing: float = 0.0
    target_clip: tuple[float, float] | None = None  # applied after smoothing
    patience: int | None = 10  # early stopping on the validation loss (``monitor``); None = off
    monitor: str = "bce"  # bce: the validation BCE on the 0/1 labels | smoothed_bce: on the training targets' smoothing
    min_delta: float = 0.0
    eval_batch_size: int = 4096
    restore_best: bool = True  # reload the best-validation weights at the end
    amp: bool = True  # mixed precision, used on CUDA only (CPU always trains in float32)
    amp_dtype: str = "auto"  # auto (bf16 where supported, else fp16) | bf16 | fp16
    # Start the output layer at the training prior (logit of each target's mean): with rare
    # targets an unbiased head begins at p = 0.5 and spends its first epochs unlearning it.
    init_output_bias: bool = True
    # "balanced": weight each target's positive cells by its negatives/positives ratio (capped at 50),
    # for rare positives with a rank metric (Tox21's ROC-AUC); "log_shrink": the 2nd-place 1-D CNN's
    # weights below 1 for frequent targets; None: plain BCE, as lish-moa's log loss wants
    pos_weight: str | None = None

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {MONITORS}, got {self.monitor!r}")
        if self.scheduler == "multistep" or self.milestones is not None:
            stones = self.milestones
            if (not isinstance(stones, (list, tuple)) or not stones or not all(_is_int(m) and m >= 1 for m in stones)
                    or list(stones) != sorted(set(stones))):
                raise ValueError(f"milestones must be a list of increasing epochs >= 1 (scheduler multistep), got {stones!r}")
            self.milestones = tuple(int(m) for m in stones)
            if not 0.0 < float(self.step_factor) <= 1.0:
                raise ValueError(f"step_factor must be in (0, 1], got {self.step_factor!r}")
        if self.plateau_threshold_mode not in ("rel", "abs"):
            raise ValueError(f"plateau_threshold_mode must be rel or abs, got {self.plateau_threshold_mode!r}")
        if float(self.plateau_threshold) < 0 or not float(self.adam_eps) > 0:
            raise ValueError(f"plateau_threshold must be >= 0 and adam_eps > 0, got {self.plateau_threshold!r}, "
                             f"{self.adam_eps!r}")
        if not isinstance(self.decoupled_weight_decay, bool):
            raise ValueError(f"decoupled_weight_decay must be true or false, got {self.decoupled_weight_decay!r}")
        if self.decoupled_weight_decay and self.optimizer != "radam":
            raise ValueError(f"decoupled_weight_decay is an option of optimizer radam (adamw always decouples), "
                             f"not {self.optimizer!r}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype must be one of {sorted(AMP_DTYPES)}, got {self.amp_dtype!r}")
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if not _is_int(getattr(self, key)) or getattr(self, key) < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {getattr(self, key)!r}")
        for key in ("patience", "t_max"):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"{key} must be an integer >= 1 or null, got {value!r}")
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if float(self.lr) <= 0 or float(self.weight_decay) < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr!r}, {self.weight_decay!r}")
        if self.target_clip is not None:
            self.target_clip = (float(self.target_clip[0]), float(self.target_clip[1]))
        if self.pos_weight not in POS_WEIGHTS:
            raise ValueError(f"pos_weight must be one of {sorted(POS_WEIGHTS, key=str)}, got {self.pos_weight!r}")

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_params(cls, params: dict[str, Any], defaults: dict[str, Any] | None = None) -> TrainConfig:
        """Pick this config's keys out of a model's ``params`` (other keys belong to the architecture)."""
        names = cls.field_names()
        merged = {k: v for k, v in (defaults or {}).items() if k in names}
        merged.update({k: v for k, v in params.items() if k in names})
        return cls(**merged)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- process settings

_INTEROP_SET = False
_ALLOCATOR_TUNED = False


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) so a CPU fit is bitwise reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def set_threads(n: int | None) -> None:
    """Use ``n`` intra-op threads (the job's share of the node); n <= 0 or None keeps torch's default.

    The inter-op pool can be sized only before torch first uses it, so that is tried once and a
    refusal is ignored: our models never run independent ops in parallel anyway.
    """
    global _INTEROP_SET
    if not n or n <= 0:
        return
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if not _INTEROP_SET:
        _INTEROP_SET = True
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:
            pass


def tune_cpu_allocator() -> None:
    """Make glibc keep freed memory for reuse instead of handing it back to the OS after every batch.

    Each CPU training step allocates and frees the same MB-sized activations and gradients; by default
    glibc serves them with fresh ``mmap``s or trims its heap, so every step pays page faults on memory
    the kernel must zero again (3–4% of a hidden-2048 step on one core, measured). The process then keeps its peak heap,
    which is what a training job wants anyway (the usual advice is jemalloc/tcmalloc via LD_PRELOAD).
    Done once per process; a no-op off glibc.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or not sys.platform.startswith("linux"):
        return
    _ALLOCATOR_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 2**20)  # glibc's maximum; larger blocks are one-off fold copies
        libc.mallopt(m_trim_threshold, 2**30)
    except (OSError, AttributeError):
        pass


def _derived_seed(seed: int, stream: int) -> int:
    """An independent seed for a second RNG stream (the batch order), so it doesn't mirror dropout."""
    return int(np.random.SeedSequence([seed % 2**63, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


# --------------------------------------------------------------------------- helpers


class SparseRows:
    """A float32 CSR fold on the host, handed to torch as dense row batches on ``device``.

    Supports what the loop asks of an input: ``len``, ``shape``, slicing (``X[start:stop]``, evaluation and
    inference) and :meth:`take` (an epoch's shuffled minibatch). Each call densifies only its rows.
    """

    def __init__(self, X: sp.spmatrix, device: torch.device) -> None:
        self.csr = sp.csr_matrix(X, dtype=np.float32)
        self.device = device

    def __len__(self) -> int:
        return int(self.csr.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return self.csr.shape

    def _dense(self, block: sp.csr_matrix) -> torch.Tensor:
        t = torch.from_numpy(block.toarray())
        return t.to(self.device) if self.device.type != "cpu" else t

    def __getitem__(self, rows: slice) -> torch.Tensor:
        if not isinstance(rows, slice):
            raise TypeError("SparseRows: slice rows with start:stop, or use take(index)")
        return self._dense(self.csr[rows])

    def take(self, index: np.ndarray) -> torch.Tensor:
        """The rows at ``index`` (any order), dense on the device."""
        return self._dense(self.csr[index])


def _to_device(a: np.ndarray | sp.spmatrix, device: torch.device) -> torch.Tensor | SparseRows:
    """One float32 copy of a fold array on ``device`` (zero-copy on CPU when already float32); a sparse
    matrix stays on the host as :class:`SparseRows`, densified batch by batch."""
    if sp.issparse(a):
        return SparseRows(a, device)
    t = torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32))
    return t.to(device, non_blocking=False) if device.type != "cpu" else t


def batch_bounds(n: int, batch_size: int, drop_last: bool = False) -> list[tuple[int, int]]:
    """Batch [start, stop) pairs covering all ``n`` rows (``drop_last``: without an incomplete last batch);
    a trailing single row joins the previous batch, because BatchNorm cannot train on one row and
    dropping it would lose a sample."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if drop_last and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < batch_size:
        bounds.pop()
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2] = (bounds[-2][0], n)
        bounds.pop()
    return bounds


def make_optimizer(module: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over the trainable params. Adam uses the fused kernel (one pass over
    params, grads and moments) when this torch has it for the device: on CPU it saves a third of the
    step time at hidden 2048."""
    params = [p for p in module.parameters() if p.requires_grad]
    eps = float(cfg.adam_eps)
    if cfg.optimizer == "radam":
        return torch.optim.RAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=eps,
                                 decoupled_weight_decay=bool(cfg.decoupled_weight_decay))
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=eps)
    try:
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, eps=eps, foreach=True)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Return (scheduler, per_batch): OneCycle and whole-run cosine step every batch; ReduceLROnPlateau
    (on the validation loss), cosine with ``t_max`` epochs and MultiStepLR (the lr × ``step_factor`` after
    each of the ``milestones`` epochs, as pytorch-tabnet steps it) every epoch."""
    if cfg.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.max_lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
            pct_start=cfg.pct_start, div_factor=cfg.div_factor,
        )
        return sched, True
    if cfg.scheduler == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr,
            threshold=float(cfg.plateau_threshold), threshold_mode=cfg.plateau_threshold_mode,
        )
        return sched, False
    if cfg.scheduler == "cosine":
        if cfg.t_max is None:
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps_per_epoch), True
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(cfg.t_max)), False
    if cfg.scheduler == "multistep":
        sched = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(cfg.milestones), gamma=float(cfg.step_factor)
        )
        return sched, False
    return None, False


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision only on CUDA: bf16 where the GPU supports it (no loss scaling), else fp16; None = float32."""
    if not cfg.amp or device.type != "cuda":
        return None
    dtype = AMP_DTYPES[cfg.amp_dtype]
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return dtype


def autocast(dtype: torch.dtype | None):
    """The forward passes' autocast context (a no-op without mixed precision)."""
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else nullcontext()


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler=None,
                  grad_clip: float | None = None) -> None:
    """Backpropagate, clip the gradients' norm if asked, and step (through the fp16 GradScaler when there is one)."""
    if scaler is not None:
        scaler.scale(loss).backward()
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            _clip(optimizer, grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return
    loss.backward()
    if grad_clip is not None:
        _clip(optimizer, grad_clip)
    optimizer.step()


def _clip(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, max_norm)


def _module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def _clone_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class EarlyStopping:
    """Track the best validation loss: keep its weights, and say when ``patience`` epochs passed
    without an improvement over ``min_delta`` (``patience`` None: never stop)."""

    def __init__(self, patience: int | None, min_delta: float = 0.0, keep_best: bool = True) -> None:
        self.patience, self.min_delta, self.keep_best = patience, min_delta, keep_best
        self.best_loss, self.best_state, self.stale = math.inf, None, 0

    def update(self, module: nn.Module, valid_loss: float) -> bool:
        """Record one epoch's validation loss; True when training should stop."""
        if valid_loss < self.best_loss - self.min_delta:
            self.best_loss, self.stale = valid_loss, 0
            if self.keep_best:
                self.best_state = _clone_state(module)
            return False
        self.stale += 1
        return self.patience is not None and self.stale >= self.patience

    def restore(self, module: nn.Module, log, prefix: str = "") -> None:
        """Load the best weights back, if any were kept."""
        if self.best_state is not None:
            module.load_state_dict(self.best_state)
            log.info("%srestored best weights: valid %.5f", prefix, self.best_loss)


# --------------------------------------------------------------------------- the loop

#: a batch's loss: (float32 outputs, targets, label mask or None) -> scalar tensor
LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def train_module(
    module: nn.Module,
    X: torch.Tensor | SparseRows,
    Y: torch.Tensor,
    mask: torch.Tensor | None,
    cfg: TrainConfig,
    context: FitContext,
    loss_fn: LossFn,
    evaluate: Callable[[nn.Module], float] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    name: str = "",
) -> list[dict[str, Any]]:
    """Train ``module`` in place on device tensors ``X``/``Y`` (``mask``: labelled cells, or None); the
    one epoch loop of every torch model. Returns one history record per epoch:
    ``{epoch, train_loss, valid_loss, lr, seconds}``.

    Hooks: ``loss_fn`` scores a batch; ``evaluate`` (called in eval mode after each epoch) returns the
    validation loss that early stopping, best-weight restore and ReduceLROnPlateau watch (lower is
    better; None: no validation); ``augment`` transforms each epoch's shuffled inputs (with its own
    seeded generator). Dropout and the batch order draw from streams seeded by ``context.seed``.
    ``X`` may be :class:`SparseRows`: then each minibatch is densified on its own (no ``augment``).
    """
    sparse = isinstance(X, SparseRows)
    if sparse and augment is not None:
        raise ValueError(f"{name or 'train_module'}: an input augmentation needs dense inputs, not a sparse block")
    device = Y.device
    set_threads(context.threads)
    if device.type == "cpu":
        tune_cpu_allocator()
    torch.manual_seed(context.seed)  # dropout masks
    perm_gen = torch.Generator(device=device).manual_seed(_derived_seed(context.seed, 1))
    aug_gen = torch.Generator(device=device).manual_seed(_derived_seed(context.seed, 2)) if augment else None
    log, prefix = context.logger, f"{name} " if name else ""

    module.train()
    n = len(X)
    bounds = batch_bounds(n, cfg.batch_size, cfg.drop_last)
    optimizer = make_optimizer(module, cfg)
    scheduler, per_batch = make_scheduler(optimizer, cfg, len(bounds))
    dtype = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    # reused gather buffers: one gather per epoch, then batches are contiguous views (a sparse X: per batch)
    X_buf, Y_buf = (None if sparse else torch.empty_like(X)), torch.empty_like(Y)
    M_buf = None if mask is None else torch.empty_like(mask)

    history: list[dict[str, Any]] = []
    stopper = EarlyStopping(cfg.patience, cfg.min_delta, cfg.restore_best)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=perm_gen, device=device)
        order = perm.cpu().numpy() if sparse else None
        if not sparse:
            torch.index_select(X, 0, perm, out=X_buf)
        torch.index_select(Y, 0, perm, out=Y_buf)
        if M_buf is not None:
            torch.index_select(mask, 0, perm, out=M_buf)
        X_e = augment(X_buf, aug_gen) if augment else X_buf
        loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        lr = optimizer.param_groups[0]["lr"]
        for start, stop in bounds:
            lr = optimizer.param_groups[0]["lr"]
            optimizer.zero_grad(set_to_none=True)
            x = X.take(order[start:stop]) if sparse else X_e[start:stop]
            with autocast(dtype):
                outputs = module(x)
            m = None if M_buf is None else M_buf[start:stop]
            loss = loss_fn(outputs.float(), Y_buf[start:stop], m)
            backward_step(loss, optimizer, scaler, cfg.grad_clip)
            loss_sum += loss.detach() * (stop - start)
            if per_batch:
                scheduler.step()
        train_loss = float(loss_sum) / n  # the one host sync of the epoch
        valid_loss = None
        if evaluate is not None:
            module.eval()
            valid_loss = float(evaluate(module))
            module.train()
        if scheduler is not None and not per_batch:
            if cfg.scheduler == "plateau":
                scheduler.step(valid_loss if valid_loss is not None else train_loss)
            else:
                scheduler.step()
        seconds = time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
                        "lr": lr, "seconds": seconds})
        log.info("%sepoch %d/%d train %.5f valid %s lr %.2e %.2fs", prefix, epoch, cfg.epochs, train_loss,
                 "-" if valid_loss is None else f"{valid_loss:.5f}", lr, seconds)
        if valid_loss is None:
            continue
        if stopper.update(module, valid_loss):
            log.info("%searly stop after epoch %d: no improvement for %d epochs", prefix, epoch, stopper.stale)
            break
    stopper.restore(module, log, prefix)
    module.eval()
    return history


# --------------------------------------------------------------------------- BCE-trained modules


@torch.inference_mode()
def batched_outputs(module: nn.Module, X: torch.Tensor, batch_size: int, dtype: torch.dtype | None = None):
    """(start, stop, float32 outputs) over ``X`` in large batches; the caller sets the module's mode."""
    for start in range(0, len(X), batch_size):
        stop = min(start + batch_size, len(X))
        with autocast(dtype):
            out = module(X[start:stop])
        yield start, stop, out.float()


def bce_loss(batches, Y: torch.Tensor, mask: torch.Tensor | None) -> float:
    """Mean unsmoothed BCE over labelled cells of ``batches`` (:func:`batched_outputs`), summed on the device
    and read once."""
    total = torch.zeros((), dtype=torch.float64, device=Y.device)
    for start, stop, out in batches:
        m = None if mask is None else mask[start:stop]
        total += bce_with_logits(out, Y[start:stop], m, reduction="sum")
    count = Y.numel() if mask is None else int(mask.sum())
    return float(total) / max(count, 1)


def bce_evaluator(X_valid: torch.Tensor, Y_valid: torch.Tensor, mask: torch.Tensor | None, batch_size: int,
                  dtype: torch.dtype | None = None) -> Callable[[nn.Module], float]:
    """The validation hook of a BCE-trained module: its unsmoothed BCE over the labelled validation cells."""
    return lambda module: bce_loss(batched_outputs(module, X_valid, batch_size, dtype), Y_valid, mask)


def evaluate_module(
    module: nn.Module, X: np.ndarray, Y: np.ndarray, context: FitContext | None = None,
    batch_size: int = 4096,
) -> float:
    """The validation loss ``fit_module`` tracks (mean BCE over labelled cells), for checks and reports."""
    device = torch.device(context.device) if context is not None else _module_device(module)
    module.to(device)
    X_t, Y_t, mask = prepare_targets(X, Y, device)
    was_training = module.training
    module.eval()
    loss = bce_evaluator(X_t, Y_t, mask, batch_size)(module)
    module.train(was_training)
    return loss


def predict_module(
    module: nn.Module, X: np.ndarray, context: FitContext | None = None, batch_size: int = 4096,
    dtype: torch.dtype | None = None, sigmoid: bool = True,
) -> np.ndarray:
    """Float32 outputs (n × t) — sigmoid probabilities by default — in large inference batches."""
    device = torch.device(context.device) if context is not None else _module_device(module)
    if context is not None:
        set_threads(context.threads)
    module.to(device)
    was_training = module.training
    module.eval()
    X_t = _to_device(X, device)
    chunks = [(torch.sigmoid(out) if sigmoid else out).cpu() for _, _, out in batched_outputs(module, X_t, batch_size, dtype)]
    module.train(was_training)
    if not chunks:
        n_out = _output_dim(module, X.shape[1], device)
        return np.zeros((0, n_out), dtype=np.float32)
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)


def _output_dim(module: nn.Module, n_in: int, device: torch.device) -> int:
    """Width of the module's output, found by a dummy forward (only needed for empty inputs)."""
    with torch.inference_mode():
        return int(module(torch.zeros(2, n_in, device=device)).shape[1])


def fit_module(
    module: nn.Module,
    X: np.ndarray,
    Y: np.ndarray,
    X_valid: np.ndarray | None,
    Y_valid: np.ndarray | None,
    cfg: TrainConfig,
    context: FitContext,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    penalty: Callable[[], torch.Tensor] | None = None,
    name: str = "",
) -> list[dict[str, Any]]:
    """Train ``module`` in place on logits-vs-targets BCE through :func:`train_module`; its history.

    Targets are smoothed (and clipped) once, not per batch; ``pos_weight`` (balanced | log_shrink) weighs
    each target's positives; NaN targets are missing labels, masked out of both losses; ``penalty`` (read after each
    forward pass) is added to the training loss. With validation data the best-validation weights are
    restored and training stops early after ``cfg.patience`` stale epochs; the validation loss is the BCE on
    the 0/1 labels, or (``cfg.monitor == "smoothed_bce"``) on the labels smoothed and clipped as the training
    targets are.
    """
    device = torch.device(context.device)
    module.to(device)
    pos_weight = POS_WEIGHTS[cfg.pos_weight](_to_device(Y, device)) if cfg.pos_weight else None
    X_t, Y_t, mask_t = prepare_targets(X, Y, device)
    Y_t = SmoothBCEWithLogits(cfg.label_smoothing, cfg.target_clip).smooth(Y_t)  # once, not per batch
    evaluate = None
    if X_valid is not None and Y_valid is not None and X_valid.shape[0] > 0:
        X_v, Y_v, mask_v = prepare_targets(X_valid, Y_valid, device)
        if cfg.monitor == "smoothed_bce":  # the training loss's targets (pytorch-tabnet's eval_metric of the winners)
            Y_v = SmoothBCEWithLogits(cfg.label_smoothing, cfg.target_clip).smooth(Y_v)
        evaluate = bce_evaluator(X_v, Y_v, mask_v, cfg.eval_batch_size, amp_dtype(cfg, device))

    def loss_fn(logits: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        loss = bce_with_logits(logits, y, m, pos_weight=pos_weight)
        return loss if penalty is None else loss + penalty()

    return train_module(module, X_t, Y_t, mask_t, cfg, context, loss_fn, evaluate, augment, name)


def prepare_targets(
    X: np.ndarray, Y: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Device tensors for a fold; NaN targets become a mask (None when there are none) and zeros."""
    if X.shape[0] != len(Y):
        raise ValueError(f"X has {X.shape[0]} rows but Y has {len(Y)}")
    X_t, Y_t = _to_device(X, device), _to_device(Y, device)
    mask = label_mask(Y_t)
    if mask is not None:
        Y_t = torch.nan_to_num(Y_t, nan=0.0)
    return X_t, Y_t, mask


# --------------------------------------------------------------------------- model wrapper


def init_output_bias(module: nn.Module, Y: np.ndarray, eps: float = 1e-4) -> None:
    """Set the last Linear layer's bias to the logit of each target's training frequency (a target
    without any label starts at logit 0)."""
    last = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not last or last[-1].out_features != Y.shape[1] or last[-1].bias is None:
        return
    with torch.no_grad():
        last[-1].bias.copy_(torch.as_tensor(prior_logit(Y, eps), dtype=last[-1].bias.dtype))


class TorchTabularModel(TabularModel):
    """A :class:`TabularModel` around a BCE-trained torch module: subclasses only implement :meth:`build_module`.

    A sparse ``X`` is densified batch by batch (:class:`SparseRows`) by :func:`fit_module` and
    :func:`predict_module`; archs registered with ``sparse=True`` in :mod:`moastack.archs` get one.

    ``params`` hold the architecture's keys (``defaults``) and any :class:`TrainConfig` field (with the
    arch's ``train_defaults`` over TrainConfig's); the base class rejects unknown keys.
    """

    #: this architecture's overrides of TrainConfig defaults
    train_defaults: ClassVar[dict[str, Any]] = {}
    uses_torch = True

    @classmethod
    def known_params(cls) -> set[str]:
        return set(cls.defaults) | TrainConfig.field_names()

    def check_params(self) -> None:
        self.train_config()  # validate now, not after preprocessing

    def train_config(self) -> TrainConfig:
        return TrainConfig.from_params(self.params, self.train_defaults)

    @abstractmethod
    def build_module(self, n_in: int, n_out: int) -> nn.Module:
        """The untrained module mapping n_in features to n_out logits."""

    def fit(self, X, Y, X_valid, Y_valid, context: FitContext) -> TorchTabularModel:
        seed_everything(context.seed)  # weight init
        set_threads(context.threads)
        self.n_in_, self.n_out_ = int(X.shape[1]), int(Y.shape[1])
        self.module_ = self.build_module(self.n_in_, self.n_out_)
        if self.train_config().init_output_bias:
            init_output_bias(self.module_, Y)
        self.history_ = fit_module(self.module_, X, Y, X_valid, Y_valid, self.train_config(), context)
        return self

    def predict(self, X, context: FitContext | None = None) -> np.ndarray:
        return predict_module(self.module_, X, context, batch_size=self.train_config().eval_batch_size)

    def state(self) -> dict[str, Any]:
        return {
            "module": {k: v.detach().cpu() for k, v in self.module_.state_dict().items()},
            "n_in": self.n_in_,
            "n_out": self.n_out_,
            "history": list(self.history_),
            **self.extra_state(),
        }

    def extra_state(self) -> dict[str, Any]:
        """What an arch learned besides its module's weights and needs to rebuild it (saved in the state)."""
        return {}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state` before the module is rebuilt."""

    @classmethod
    def from_state(cls, state: dict[str, Any], params: dict[str, Any]) -> TorchTabularModel:
        model = cls(**params)
        model.set_extra_state(state)
        model.n_in_, model.n_out_ = int(state["n_in"]), int(state["n_out"])
        model.module_ = model.build_module(model.n_in_, model.n_out_)
        model.module_.load_state_dict(state["module"])
        model.module_.eval()
        model.history_ = list(state.get("history", []))
        return model
