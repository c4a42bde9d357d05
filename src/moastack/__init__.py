"""moastack: the lish-moa winning recipe as a reproducible Snakemake pipeline.

All real logic lives in this package; the Snakemake scripts are thin entry points.
"""

__version__ = "0.1.0"
