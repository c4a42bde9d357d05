"""Multi-output regression for single-cell perturbation tasks (Open Problems 2023 style).

Rows are (cell type, compound) pairs, targets thousands of continuous gene responses, the metric MRRMSE.
Modules: ``metrics`` (MRRMSE and score records), ``synthetic`` (a seeded generator in moastack's table
contracts), ``encoding`` (in-fold target encoding), ``svd`` (target SVD), ``losses`` (mixed losses) and
``models`` (ridge and MLP regressors; ``ARCHS`` for the registry). Import the submodules directly: this
package imports nothing heavy on its own.
"""
