"""The ``moastack`` command: tools around a finished pipeline run (the pipeline itself is Snakemake).

    moastack predict --results results/ --input new_test_features.csv --output predictions.csv
    moastack report --results results/ --output-dir results/report
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from moastack import __version__


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moastack",
        description="Tools around a moastack pipeline run. The pipeline itself runs with `snakemake --cores N`.",
    )
    parser.add_argument("--version", action="version", version=f"moastack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "predict",
        help="predict new samples with the fitted artifacts of a results folder",
        description=(
            "Validate new samples like `prepare`, apply the saved fitted feature sets, every blend member's "
            "seed x fold models (and the models they stack on) and the blend weights, without retraining or "
            "refitting. Writes sig_id + the scored targets, controls at 0, like the submission."
        ),
    )
    p.add_argument("--results", default="results", help="the pipeline's results folder (default: results)")
    p.add_argument("--input", required=True, help="new samples: a CSV (or .parquet) with the train_features columns")
    p.add_argument("--output", required=True, help="where to write the predictions CSV")
    p.add_argument("--batch-size", type=_positive_int, default=4096, help="rows per batch (default: 4096)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where torch models run; auto uses CUDA when available (default: auto)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    p.add_argument("--quiet", action="store_true", help="no progress line or summary on stderr")
    p.set_defaults(func=_predict)

    r = sub.add_parser(
        "report",
        help="build the HTML report of a results folder",
        description="Write index.html (self-contained) and its figures from a results folder's collected outputs.",
    )
    r.add_argument("--results", default="results", help="the pipeline's results folder (default: results)")
    r.add_argument("--output-dir", default=None, help="where to write the report (default: RESULTS/report)")
    r.add_argument("--worst-targets", type=_positive_int, default=20, help="how many worst targets to show")
    r.set_defaults(func=_report)
    return parser


def _predict(args: argparse.Namespace) -> int:
    from moastack.predict import predict

    start = time.perf_counter()
    out = predict(args.results, args.input, args.output, batch_size=args.batch_size, device=args.device,
                  threads=args.threads, progress=False if args.quiet else None)
    if not args.quiet:
        print(f"moastack predict: wrote {len(out)} rows x {out.shape[1] - 1} targets to {args.output} "
              f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from moastack.report import ReportInputs, build_report, default_outputs

    out_dir = args.output_dir or str(Path(args.results) / "report")
    outputs = default_outputs(out_dir)
    build_report(ReportInputs.from_results(args.results), outputs, worst_targets=args.worst_targets)
    print(f"moastack report: wrote {outputs['html']}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from moastack.data.validate import InputError

    expected: tuple[type[BaseException], ...] = (InputError, FileNotFoundError, NotImplementedError)
    if args.command == "predict":
        from moastack.predict import PredictError

        expected += (PredictError,)
    try:
        return args.func(args)
    except expected as err:
        print(f"moastack {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nmoastack {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
