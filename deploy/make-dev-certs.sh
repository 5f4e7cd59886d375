#!/usr/bin/env bash
# Makes a development CA and the certificates of one rami deployment (PEM, keys mode 0600):
#   ca.pem, ca.key            the deployment's CA (keep ca.key off the nodes)
#   coordinator.pem/.key      CN=rami-coordinator: the public gRPC and HTTP ports' certificate,
#                             and the coordinator's client identity towards its workers
#   worker.pem/.key           CN=rami-worker: the workers' port, and a rank's identity towards
#                             its group's rendezvous store
# Both certificates name localhost, 127.0.0.1, ::1, this host's name and every --host given
# (a DNS name or an IP address), and may serve and connect (serverAuth, clientAuth).
# For production, issue the same two identities from your own CA (cert-manager on
# Kubernetes); docs/deploy.md says what each process reads.
#
#   deploy/make-dev-certs.sh OUT_DIR [--host NAME_OR_IP]... [--days 30]
set -euo pipefail

die() { echo "make-dev-certs: $*" >&2; exit 2; }
(($#)) || die "usage: deploy/make-dev-certs.sh OUT_DIR [--host NAME_OR_IP]... [--days 30]"
OUT="$1"
shift
DAYS=30
HOSTS=(localhost "$(hostname)")
while (($#)); do
  case "$1" in
    --host) (($# >= 2)) || die "--host needs a value"; HOSTS+=("$2"); shift 2 ;;
    --days) [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--days: not a number"; DAYS="$2"; shift 2 ;;
    *) die "unknown flag $1" ;;
  esac
done
command -v openssl >/dev/null || die "openssl is not installed"
mkdir -p "$OUT"
umask 077

SAN="IP:127.0.0.1,IP:::1"
for h in "${HOSTS[@]}"; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then SAN+=",IP:$h"; else SAN+=",DNS:$h"; fi
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$DAYS" \
  -subj "/CN=rami development CA" -keyout "$OUT/ca.key" -out "$OUT/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null

issue() {  # name, common name
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$OUT/$1.key" -out "$OUT/$1.csr" 2>/dev/null
  openssl x509 -req -in "$OUT/$1.csr" -CA "$OUT/ca.pem" -CAkey "$OUT/ca.key" \
    -CAcreateserial -days "$DAYS" -out "$OUT/$1.pem" -extfile <(printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" \
      "subjectAltName=$SAN") 2>/dev/null
  rm -f "$OUT/$1.csr"
}
issue coordinator rami-coordinator
issue worker rami-worker
rm -f "$OUT/ca.srl"
chmod 0644 "$OUT/ca.pem" "$OUT/coordinator.pem" "$OUT/worker.pem"
echo "make-dev-certs: CA and certificates for ${HOSTS[*]} in $OUT (valid $DAYS days)"
