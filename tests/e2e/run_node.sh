#!/bin/sh
# Runs a node e2e test; without node (or the npm packages) the test fails with
# what to run, instead of not being registered at all.
if ! command -v node >/dev/null 2>&1; then
  echo "e2e: node is not installed: run scripts/setup.sh" >&2
  exit 1
fi
exec node "$@"
