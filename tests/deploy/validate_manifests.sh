#!/usr/bin/env bash
# CI validation of the deployment files, offline (deploy/setup.sh installed the tools):
#   1. every kustomize overlay under deploy/k8s/overlays renders with `kubectl kustomize`;
#   2. the rendered manifests validate strictly against the Kubernetes API schemas
#      (kubernetes-validate; LeaderWorkerSet as far as possible offline) and rami's own
#      invariants (validate_manifests.py), and a manifest with an unknown field is rejected;
#   3. shellcheck on every shell script of the repository (deploy/, .ci/, tests/, tools/);
#   4. hadolint on the Dockerfile, where it is installed.
# With --build DIR, the coordinator's and workers' flags in the manifests are checked against
# the built binaries. Tools: kubectl on PATH (or the tools venv's), the venv $RAMI_TOOLS_VENV
# (/opt/rami-tools-venv).
#   tests/deploy/validate_manifests.sh [--build DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD_ARGS=()
if [ "${1:-}" = --build ]; then BUILD_ARGS=(--build "$2"); fi
VENV="${RAMI_TOOLS_VENV:-/opt/rami-tools-venv}"
K8S_VERSIONS="${RAMI_K8S_VERSIONS:-1.29.0,1.37.0}"
OUT="$(mktemp -d /tmp/rami-manifests.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
PASSED=0 FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }

KUBECTL="$(command -v kubectl || true)"
[ -n "$KUBECTL" ] || KUBECTL="$VENV/bin/kubectl"
for tool in "$KUBECTL" "$VENV/bin/python"; do
  [ -x "$tool" ] || { echo "validate_manifests: $tool missing: run deploy/setup.sh --deps" >&2; exit 1; }
done
command -v shellcheck >/dev/null || { echo "validate_manifests: shellcheck missing: run deploy/setup.sh --deps" >&2; exit 1; }

# 1. Render.
RENDERED=()
for overlay in "$ROOT"/deploy/k8s/overlays/*/; do
  name="$(basename "$overlay")"
  if "$KUBECTL" kustomize "$overlay" >"$OUT/$name.yaml" 2>"$OUT/$name.err"; then
    pass "kubectl kustomize overlays/$name"
    RENDERED+=("$OUT/$name.yaml")
  else
    fail "kubectl kustomize overlays/$name: $(cat "$OUT/$name.err")"
  fi
done

# 2. Validate (the Python script prints its own PASS/FAIL lines and a count).
if "$VENV/bin/python" "$ROOT/tests/deploy/validate_manifests.py" \
  --kubernetes-versions "$K8S_VERSIONS" "${BUILD_ARGS[@]}" "${RENDERED[@]}" \
  >"$OUT/validate.out" 2>&1; then
  pass "manifests: $(tail -n 1 "$OUT/validate.out")"
else
  fail "manifests: $(tail -n 1 "$OUT/validate.out")"
fi
grep -v '^PASS: ' "$OUT/validate.out" | grep -v ' passed, ' || true
# The validator must reject what the API server would: an unknown field.
sed 's/^\( *\)terminationGracePeriodSeconds:/\1terminationGracePeriodSecond:/' \
  "$OUT/single-node-tp8.yaml" >"$OUT/broken.yaml"
if "$VENV/bin/python" "$ROOT/tests/deploy/validate_manifests.py" \
  --kubernetes-versions "$K8S_VERSIONS" "$OUT/broken.yaml" >"$OUT/broken.out" 2>&1; then
  fail "a manifest with an unknown field passed validation"
else
  pass "a manifest with an unknown field is rejected: $(grep -m1 '^FAIL' "$OUT/broken.out" | cut -c1-120)"
fi

# 3. shellcheck: every script with a sh/bash shebang or a .sh name. Gate on warnings and
#    errors; style notes are printed but do not fail.
SCRIPTS=()
while IFS= read -r -d '' f; do
  case "$f" in *.sh) SCRIPTS+=("$f"); continue ;; esac
  if head -n 1 "$f" | grep -qE '^#!.*\b(ba)?sh\b'; then SCRIPTS+=("$f"); fi
done < <(cd "$ROOT" && find deploy .ci tests tools -type f -not -path '*/models/*' -print0 2>/dev/null)
if (cd "$ROOT" && shellcheck --severity=warning "${SCRIPTS[@]}") >"$OUT/shellcheck.out" 2>&1; then
  pass "shellcheck (warnings and errors) on ${#SCRIPTS[@]} scripts: ${SCRIPTS[*]}"
else
  fail "shellcheck:"
  cat "$OUT/shellcheck.out"
fi
(cd "$ROOT" && shellcheck "${SCRIPTS[@]}") >"$OUT/style.out" 2>&1 \
  || echo "NOTE: shellcheck style/info notes (not gating): $(grep -c '^In ' "$OUT/style.out")"

# 4. hadolint.
HADOLINT="$(command -v hadolint || true)"
[ -n "$HADOLINT" ] || HADOLINT="$VENV/bin/hadolint"
if [ ! -f "$ROOT/Dockerfile" ]; then
  fail "no Dockerfile at the repository root"
elif [ -x "$HADOLINT" ]; then
  if "$HADOLINT" "$ROOT/Dockerfile" >"$OUT/hadolint.out" 2>&1; then
    pass "hadolint Dockerfile ($("$HADOLINT" --version))"
  else
    fail "hadolint Dockerfile:"
    cat "$OUT/hadolint.out"
  fi
else
  echo "NOT RUN: hadolint is not installed (deploy/setup.sh --deps installs it)"
fi

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
