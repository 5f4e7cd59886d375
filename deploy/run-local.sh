#!/usr/bin/env bash
# Former local launcher, kept as an alias of deploy/launch-node.sh (same flags; with neither
# --gpus nor --cpu-workers it runs one worker per GPU, or --tp CPU workers without a GPU).
exec "$(dirname "$0")/launch-node.sh" "$@"
