#!/usr/bin/env bash
# Builds the base image debian:trixie-slim without a registry:
# debootstrap --variant=minbase trixie into a folder, docker import, tag.
# Does nothing when the tag already exists.
set -euo pipefail
TAG=${1:-debian:trixie-slim}
MIRROR=${PGCHAOS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "[base] $TAG present"
  exit 0
fi
if docker pull "$TAG" >/dev/null 2>&1; then
  echo "[base] $TAG pulled"
  exit 0
fi
root=$(mktemp -d /var/tmp/pgchaos-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "[base] no registry: debootstrap --variant=minbase trixie (a few minutes)"
debootstrap --variant=minbase --include=ca-certificates trixie "$root" "$MIRROR" >"$root.log" 2>&1 \
  || { echo "pgchaos: debootstrap failed, see $root.log" >&2; exit 2; }
rm -f "$root.log"
# Keep images small and apt quiet, as the official slim image does.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/99pgchaos-norecommends"
echo "[base] docker import -> $TAG"
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
echo "[base] $TAG built"
