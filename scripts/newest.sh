#!/usr/bin/env bash
# The test suite on the newest releases of TensorFlow, Keras and Ray: pyproject.toml's upper bounds lifted.
#
#   scripts/newest.sh                                          # the whole suite (pytest's default run)
#   scripts/newest.sh tests/test_compat.py tests/test_engine.py -x    # pytest's arguments: some of it
#
# Installs the committed tree (git archive HEAD, into a temporary directory) in a fresh venv
# (NEWEST_VENV, default .venv-newest), as the README installs it (pip install -e ".[test]") but with
# the upper bounds of tensorflow, keras and ray removed from its pyproject.toml, so pip takes their
# newest releases; runs pytest there; prints the versions it ran on, whatever the tests gave. Exits
# with pytest's code. When it passes, those versions are the new upper bounds (docs/engine.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${NEWEST_VENV:-$root/.venv-newest}"
work="$(mktemp -d "${TMPDIR:-/tmp}/harness-newest.XXXXXX")"
trap 'rm -rf "$work"' EXIT

git -C "$root" archive HEAD | tar -x -C "$work"
ln -s ../conf "$work/harness/conf"  # as in a checkout: Hydra finds the configs through the package
sed -E -i 's/"((tensorflow|keras|ray\[default\])>=[0-9.]+),<[0-9.]+"/"\1"/' "$work/pyproject.toml"
if grep -Eq '"(tensorflow|keras|ray\[default\])[^"]*<' "$work/pyproject.toml"; then
    echo "error: pyproject.toml: an upper bound of tensorflow, keras or ray was not lifted" >&2
    exit 2
fi

python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --upgrade -e "$work[test]"

status=0
(cd "$work" && "$venv/bin/python" -m pytest "$@") || status=$?
echo "ran on:"
"$venv/bin/python" - <<'EOF'
import platform
from importlib import metadata

for name in ("tensorflow", "keras", "ray", "ml_dtypes", "numpy", "pandas", "pyarrow"):
    print(f"  {name} {metadata.version(name)}")
print(f"  Python {platform.python_version()}")
EOF
exit "$status"
