#!/usr/bin/env bash
# The container's entrypoint: runs the coordinator, one worker, or a whole node.
#   coordinator ARGS   rami-coordinator ARGS           (Kubernetes coordinator pod)
#   worker ARGS        rami-worker ARGS                (one worker; you pin its GPU and pass
#                                                      --auth_token_file, --model_roots)
#   node ARGS          deploy/launch-node.sh ARGS      (workers + coordinator, or --role workers)
#   rami ARGS          the CLI, e.g. `rami info --server=HOST:PORT`
set -euo pipefail
BIN="$(dirname "$(readlink -f "$0")")"
command="${1:---help}"
(($#)) && shift
case "$command" in
  coordinator) exec "$BIN/rami-coordinator" "$@" ;;
  worker) exec "$BIN/rami-worker" "$@" ;;
  node) exec "$BIN/launch-node.sh" --build "$BIN" "$@" ;;
  rami) exec "$BIN/rami" "$@" ;;
  -h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "entrypoint: unknown command '$command' (coordinator, worker, node, rami)" >&2; exit 2 ;;
esac
