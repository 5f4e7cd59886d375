#!/usr/bin/env bash
# TLS on the public ports, against a local deployment started by deploy/launch-node.sh
# --tls-dir with certificates from deploy/make-dev-certs.sh (one CPU worker, the tiny DMS
# model): the official `openai` package over HTTPS trusting the deployment's CA; plaintext
# HTTP and gRPC to the TLS ports refused; a client that does not trust the CA refused; the
# `rami` CLI over gRPC with TLS; a certificate rotated on disk served after SIGHUP (HTTPS) and
# within seconds (gRPC); --require_tls without certificates refused at start.
#   tests/integration/tls_test.sh --build DIR
set -euo pipefail
# shellcheck source=/dev/null  # tests/integration/real_client_test_env.sh
source "$(dirname "$0")/real_client_test_env.sh"
real_client_test_env tls_test "$@"

"$ROOT/deploy/make-dev-certs.sh" "$TMP/certs" >/dev/null
"$ROOT/deploy/make-dev-certs.sh" "$TMP/rotated" >/dev/null  # another CA: the rotation

# --require_tls refuses to start without certificates, naming the flags.
if out="$("$BUILD/coordinator/rami-coordinator" --model_dir="$ROOT/tests/golden/models/qwen3_dms" \
  --workers=127.0.0.1:1 --require_tls 2>&1)"; then
  echo "tls_test: FAIL: --require_tls without certificates started" >&2; exit 1
fi
grep -q -- "--require_tls: the public ports would serve plaintext" <<<"$out" \
  || { echo "tls_test: FAIL: unexpected --require_tls error: $out" >&2; exit 1; }
echo "ok: --require_tls without certificates: refused at start"
# A key that does not match its certificate is refused at start too.
if out="$("$BUILD/coordinator/rami-coordinator" --model_dir="$ROOT/tests/golden/models/qwen3_dms" \
  --workers=127.0.0.1:1 --tls_cert_file="$TMP/certs/coordinator.pem" \
  --tls_key_file="$TMP/certs/worker.key" 2>&1)"; then
  echo "tls_test: FAIL: a mismatched key started" >&2; exit 1
fi
grep -q "does not belong to the certificate" <<<"$out" \
  || { echo "tls_test: FAIL: unexpected mismatched-key error: $out" >&2; exit 1; }
echo "ok: a key that is not the certificate's: refused at start"

RAMI_CLI="$BUILD/tools/rami" TLS_TEST_TMP="$TMP" "$ROOT/deploy/launch-node.sh" \
  --model "$ROOT/tests/golden/models/qwen3_dms" --cpu-workers 1 --tp 1 --port 0 --page-size 4 \
  --build "$BUILD" --logs "$TMP/logs" --tls-dir "$TMP/certs" \
  -- "$PYTHON" "$ROOT/tests/integration/tls_test.py"
