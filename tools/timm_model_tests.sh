#!/usr/bin/env bash
# Runs timm's own model tests (tests/test_models.py of a timm checkout) on the dyvit_* models, the
# way timm runs them on its models: DyViT's module is added to the list of models with
# forward_intermediates, and coma is imported before collection so that dyvit_* are registered.
#
#   bash tools/timm_model_tests.sh /path/to/pytorch-image-models [pytest options]
#
# TorchScript and FX tracing are not supported (as for timm's Hiera): those tests are deselected.
set -euo pipefail
timm_repo=${1:?usage: tools/timm_model_tests.sh TIMM_CHECKOUT [pytest options]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
src="$timm_repo/tests/test_models.py"
[ -f "$src" ] || { echo "timm_model_tests: no $src" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -q "^FEAT_INTER_FILTERS = \[" "$src" || { echo "timm_model_tests: FEAT_INTER_FILTERS not found in $src" >&2; exit 2; }
sed 's/^FEAT_INTER_FILTERS = \[/FEAT_INTER_FILTERS = ["timm_models", /' "$src" > "$work/test_models.py"
printf 'import coma  # noqa: F401  (registers dyvit_*)\n' > "$work/conftest.py"
cd "$work"
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" python -m pytest -q -p no:cacheprovider test_models.py \
  -k "dyvit and not torchscript and not fx" "$@"
