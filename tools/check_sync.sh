#!/usr/bin/env bash
# The library must be exactly what the notebooks export, and source notebooks must be clean (no outputs).
# Works on a dirty work tree: compares against a fresh export/clean, not against git.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r plant_disease "$tmp/lib"; cp -r nbs "$tmp/nbs"
nbdev_export
nbdev_clean
status=0
if ! diff -r -x __pycache__ "$tmp/lib" plant_disease; then
  echo "ERROR: plant_disease/ was out of sync with nbs/ (it has now been re-exported): edit the notebooks, not the library, and commit both." >&2
  status=1
fi
if ! diff -r -x .ipynb_checkpoints "$tmp/nbs" nbs >/dev/null; then
  diff -r -x .ipynb_checkpoints "$tmp/nbs" nbs | head -20
  echo "ERROR: source notebooks were not clean (nbdev_clean has now cleaned them): commit the cleaned notebooks." >&2
  status=1
fi
[ $status = 0 ] && echo "nbs/ and plant_disease/ are in sync; notebooks are clean."
exit $status
