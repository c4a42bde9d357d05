#!/usr/bin/env bash
# `make test-cluster`: bring the local SLURM test cluster up, run the tests marked `cluster`, and
# stop every daemon again afterwards, whatever happened.
#   tests/cluster/run-tests.sh [PYTHON] [extra pytest args...]
# Where the daemons cannot be installed (not root, not Debian), the tests are still collected
# and skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${1:-.venv/bin/python}
shift || true

down() { bash tests/cluster/slurm-down.sh; }
rc=0
bash tests/cluster/slurm-up.sh || rc=$?
case $rc in
    0) trap down EXIT
       trap 'exit 130' INT TERM ;;
    2) export MOASTACK_SLURM_UNAVAILABLE="tests/cluster/slurm-up.sh could not install the SLURM daemons here (see its message above)" ;;
    *) echo "test-cluster: the SLURM test cluster did not come up (exit $rc)" >&2
       down
       exit 1 ;;
esac
"$PYTHON" -m pytest -m cluster "$@"
