"""The ``moastack`` command: tools around a finished pipeline run (the pipeline itself is Snakemake).

    moastack predict --results results/ --input new_test_features.csv --output predictions.csv
    moastack report --results results/ --output-dir results/report
    moastack plan --configfile configs/winner.yaml          # jobs, CPU/GPU hours, memory before a run
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
    p.add_argument("--input", required=True,
                   help="new samples: a CSV (or .parquet) with the train_features columns; for a run of molecules "
                        "(data.source: table), its id and SMILES columns")
    p.add_argument("--output", required=True, help="where to write the predictions CSV")
    p.add_argument("--batch-size", type=_positive_int, default=4096, help="rows per batch (default: 4096)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where torch models run; auto uses CUDA when available (default: auto)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    p.add_argument("--labels", action="store_true",
                   help="also write a 0/1 column <target>_label per target after the probabilities: 1 where the "
                        "probability is >= the target's decision threshold stored with the blend (F1- or "
                        "MCC-optimal on its OOF predictions)")
    p.add_argument("--quiet", action="store_true", help="no progress line or summary on stderr")
    p.add_argument("--invalid-smiles", choices=["refuse", "drop"], default=None,
                   help="molecules only: SMILES RDKit cannot read stop with the rows named (refuse, the default) "
                        "or are left out with a count on stderr (drop)")
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

    pl = sub.add_parser(
        "plan",
        help="cost preview: jobs, CPU/GPU hours and peak memory per rule and model, before running",
        description=(
            "List, for each rule and each model of a config, the jobs the workflow would run and their estimated "
            "CPU hours (GPU hours for device: cuda models) and peak memory, from a size model calibrated on measured "
            "runs (README: 'Before you run: cost preview'); then the estimated wall time on --cores cores and the "
            "critical path. Reads the config only: nothing runs."
        ),
    )
    pl.add_argument("--configfile", action="append", default=None,
                    help="config to plan (repeat for several; default: config.yaml)")
    pl.add_argument("--rows", type=_positive_int, default=None,
                    help="train rows (default: the config's synthetic n_train, or lish-moa's 23,814 for source: dir)")
    pl.add_argument("--test-rows", type=_positive_int, default=None, help="test rows (default: scaled with --rows)")
    pl.add_argument("--features", type=_positive_int, default=None, help="raw feature columns (default: 875)")
    pl.add_argument("--cores", type=_positive_int, default=2, help="cores for the wall-time estimate (default: 2)")
    pl.add_argument("--gpus", type=int, default=1, help="GPUs for the wall-time estimate (default: 1)")
    pl.add_argument("--background-load", type=float, default=0.0,
                    help="other work's load average on the machine: CPU jobs get cores/(cores+load) of it (default: 0, idle)")
    pl.add_argument("--gpu-json", default=None,
                    help="benchmarks/gpu.py --out JSON: price the CNNs' GPU hours with its measured images/s")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.add_argument("--calibrate", metavar="RESULTS", default=None,
                    help="instead: fit the size model's constants on a finished run's RESULTS/benchmarks "
                         "(with the first --configfile) and print them")
    pl.add_argument("--idle", action="store_true",
                    help="with --calibrate: the run had the machine to itself, so its wall times are taken as "
                         "measured (by default a job's time is corrected for waiting for the CPU, from its CPU time)")
    pl.add_argument("--probe", action="store_true",
                    help="instead: time one epoch of the config's simple_nn, tabnet and resnet2h models at its size on "
                         "one thread (CPU time) and print their rates per GMAC (imports torch; minutes at full size)")
    pl.set_defaults(func=_plan)
    return parser


def _predict(args: argparse.Namespace) -> int:
    from moastack.predict import predict

    start = time.perf_counter()
    out = predict(args.results, args.input, args.output, batch_size=args.batch_size, device=args.device,
                  threads=args.threads, progress=False if args.quiet else None, labels=args.labels,
                  invalid_smiles=args.invalid_smiles)
    if not args.quiet:
        n_targets = (out.shape[1] - 1) // 2 if args.labels else out.shape[1] - 1
        labelled = " (probabilities and 0/1 labels)" if args.labels else ""
        print(f"moastack predict: wrote {len(out)} rows x {n_targets} targets{labelled} to {args.output} "
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


def _plan(args: argparse.Namespace) -> int:
    import json

    from moastack.config import load_config
    from moastack.plan import calibrate, gpu_rate_from_json, make_plan, measured_schedule

    configfiles = args.configfile or ["config.yaml"]
    if args.probe:
        from moastack.plan import data_sizes, probe

        config = load_config(configfiles[0])
        result = probe(config, data_sizes(config, args.rows, args.features, args.test_rows))
        if args.json:
            print(json.dumps(result, indent=2))
        return 0
    if args.calibrate:
        config = load_config(configfiles[0])
        fitted = calibrate([(config, args.calibrate)], idle=args.idle)
        measured = measured_schedule(config, args.calibrate)
        if args.json:
            print(json.dumps({"calibration": fitted, "measured": measured}, indent=2))
        else:
            print(f"measured in {args.calibrate}: {measured['jobs']} jobs")
            print(f"{'rule':<28} {'jobs':>5} {'sum s':>9} {'median s':>9} {'max RSS MB':>11}")
            for rule, r in measured["rules"].items():
                print(f"{rule:<28} {r['jobs']:>5} {r['sum_s']:>9.1f} {r['median_s']:>9.2f} {r['max_rss_mb']:>11.0f}")
            print(f"critical path {measured['critical_path_s']:.1f} s: {' -> '.join(measured['critical_path'])}")
            print("fitted constants (seconds = startup + rate x size; RSS MB = mem_base + mem_per_mb x data MB):")
            for cls, c in fitted.items():
                print(f"  {cls:20s} {c}")
        return 0
    gpu_rate = gpu_rate_from_json(args.gpu_json) if args.gpu_json else None
    plans = []
    for path in configfiles:
        plan = make_plan(load_config(path), path, rows=args.rows, features=args.features, test_rows=args.test_rows,
                         cores=args.cores, gpus=args.gpus, gpu_rate=gpu_rate, background_load=args.background_load)
        plans.append(plan)
        if not args.json:
            print(plan.format())
            print()
    if args.json:
        print(json.dumps([p.to_dict() for p in plans], indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from moastack.data.validate import InputError

    expected: tuple[type[BaseException], ...] = (InputError, FileNotFoundError, NotImplementedError)
    if args.command == "plan":
        from moastack.config import ConfigError

        expected += (ConfigError,)
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
