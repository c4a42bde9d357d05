"""What every Snakemake script does first: log to the rule's log file, honour its threads."""

from __future__ import annotations

import logging
import os
import sys


def setup_job(log_path: str | None, threads: int = 1) -> logging.Logger:
    """Send logging (and uncaught errors) to ``log_path`` and cap BLAS/torch threads at ``threads``."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        handlers = [logging.FileHandler(log_path, mode="w")]
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)
    limit_threads(threads)
    logger = logging.getLogger("moastack.job")

    def log_uncaught(exc_type, exc, tb):
        logger.error("job failed", exc_info=(exc_type, exc, tb))
        sys.__excepthook__(exc_type, exc, tb)

    sys.excepthook = log_uncaught
    return logger


def limit_threads(threads: int) -> None:
    """Use exactly the threads the scheduler granted: BLAS pools and torch's intra-op pool."""
    threads = max(int(threads), 1)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    if "torch" in sys.modules:  # a job that never imports torch must not pay for it (its pool reads the env vars)
        sys.modules["torch"].set_num_threads(threads)
