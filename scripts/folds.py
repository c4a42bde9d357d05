"""Snakemake entry point: one fold scheme's sig_id -> fold table."""

from moastack import io
from moastack.folds import make_folds
from moastack.jobs import setup_job

log = setup_job(snakemake.log[0], snakemake.threads)
features = io.read_present_columns(snakemake.input.train_features, ["sig_id", "smiles", "cell_type"])
folds = make_folds(
    snakemake.params.scheme,
    io.read_parquet(snakemake.input.targets),
    io.read_parquet(snakemake.input.drugs),
    smiles=features["smiles"] if "smiles" in features.columns else None,
    cell_types=features["cell_type"] if "cell_type" in features.columns else None,
)
log.info("fold sizes: %s", folds["fold"].value_counts().sort_index().to_dict())
io.write_parquet(folds, snakemake.output[0])
