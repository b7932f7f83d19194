#!/usr/bin/env bash
# Build the documentation with warnings as errors (broken links or anchors, a page
# missing from the nav), into a temporary folder that is removed afterwards.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cd "$root"
python3 -m mkdocs build --strict --quiet --config-file mkdocs.yml --site-dir "$out"
echo "docs: mkdocs build --strict passed"
