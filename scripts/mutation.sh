#!/usr/bin/env bash
# Mutation testing of the modules that decide results (cosmic-ray, PyPI): each mutant (a small
# deliberate bug) is applied in a throw-away git worktree of HEAD and the tests that should catch
# it are run; a mutant whose tests all pass "survived". Not part of CI (it takes long); the scores
# and the surviving mutants go to docs/mutation/.
#
#   bash scripts/mutation.sh lesions decision scan_threshold      # the modules to test
#
# Each module is tested by the test files listed in TESTS below (targeted selection keeps a run
# of a few hundred mutants within minutes on 2 cores). The worktree, not this checkout, is
# mutated: an interrupted run leaves nothing changed here.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
python="$repo/.venv/bin/python"
"$python" -c "import cosmic_ray" 2>/dev/null || "$python" -m pip install -q "cosmic-ray>=8.7"

declare -A TESTS=(
  [lesions]="test_lesions.py test_metrics.py"
  [decision]="test_decision.py test_behaviour_claims.py::test_the_threshold_chosen_on_validation_is_the_one_with_the_highest_pooled_dice test_scan_threshold.py test_lesions.py"
  [scan_threshold]="test_scan_threshold.py test_behaviour_claims.py::test_the_rule_fit_recovers_a_contrast_dependence_planted_in_the_evidence test_model_metadata.py"
  [metrics]="test_metrics.py test_evaluate_cli.py test_lesions.py"
  [training]="test_behaviour_claims.py test_training_and_inference.py test_cli_model.py"
  [adaptation]="test_behaviour_claims.py test_adaptation.py"
  [model]="test_model.py"
  [modelfile]="test_modelfile.py test_model_metadata.py"
  [io]="test_io.py test_bad_input_battery.py"
  [preprocess]="test_preprocess.py test_bad_input_battery.py"
)

work="$(mktemp -d /tmp/wmhda-mutation-XXXX)"
git worktree add -q --detach "$work/tree" HEAD
trap 'git worktree remove --force "$work/tree"; rm -rf "$work"' EXIT
mkdir -p docs/mutation

for module in "$@"; do
  [ -n "${TESTS[$module]:-}" ] || { echo "no test selection for '$module'" >&2; exit 2; }
  tests=$(for t in ${TESTS[$module]}; do printf 'Testing/Python/%s ' "$t"; done)
  cat > "$work/$module.toml" <<TOML
[cosmic-ray]
module-path = "WMHDomainAdaptLib/$module.py"
timeout = 300.0
excluded-modules = []
test-command = "env PYTHONPATH=$work/tree $python -m pytest -x -q -p no:cacheprovider $tests"

[cosmic-ray.distributor]
name = "local"
TOML
  (cd "$work/tree" && "$repo/.venv/bin/cosmic-ray" init "$work/$module.toml" "$work/$module.sqlite" \
     && "$repo/.venv/bin/cosmic-ray" exec "$work/$module.toml" "$work/$module.sqlite")
  "$repo/.venv/bin/cr-report" --show-output "$work/$module.sqlite" > "docs/mutation/$module.txt" || true
  "$repo/.venv/bin/cr-report" --show-diff --surviving-only "$work/$module.sqlite" \
    > "docs/mutation/$module-survivors.txt" || true
  tail -3 "docs/mutation/$module.txt"
done
