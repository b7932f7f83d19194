#!/usr/bin/env bash
# Host set-up for pgchaos, idempotent: Docker engine (Debian docker.io), the
# compose v2 plugin (Debian trixie's docker-compose .deb), debootstrap and the
# loop-mount tools; starts dockerd in the background when no engine answers.
# A second run changes nothing and says so.
set -euo pipefail

step() { printf '[setup] %s\n' "$*"; }
fail() { printf 'pgchaos setup: %s\n' "$*" >&2; exit 2; }

NEEDED_DEBS=(docker.io debootstrap e2fsprogs util-linux iproute2 curl ca-certificates postgresql-client)
COMPOSE_PLUGIN=/usr/libexec/docker/cli-plugins/docker-compose
changed=0

if [ "$(id -u)" -ne 0 ]; then
  fail "must run as root; otherwise install by hand: ${NEEDED_DEBS[*]}, the docker compose v2 plugin, and start dockerd"
fi
if ! [ -r /etc/debian_version ] || ! command -v apt-get >/dev/null; then
  fail "needs Debian (apt-get); elsewhere install: Docker engine, docker compose v2 plugin, debootstrap, e2fsprogs, util-linux"
fi

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    step "apt-get update"
    apt-get update -qq -o APT::Update::Error-Mode=any >/dev/null 2>&1 || apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=1
  fi
}

missing=()
for deb in "${NEEDED_DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q 'install ok installed' || missing+=("$deb")
done
# The machine may ship a docker CLI without an engine: the engine is what matters.
command -v dockerd >/dev/null || { [[ " ${missing[*]-} " == *" docker.io "* ]] || missing+=(docker.io); }
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update_once
  step "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  changed=1
else
  step "Debian packages present: ${NEEDED_DEBS[*]}"
fi

if ! docker compose version >/dev/null 2>&1; then
  step "installing the compose v2 plugin from Debian trixie's docker-compose package"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cat >"$tmp/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  mkdir -p "$tmp/lists" "$tmp/cache/archives/partial"
  apt_opts=(-o APT::Sandbox::User=root -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$tmp" -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache")
  apt-get "${apt_opts[@]}" update -qq >/dev/null
  (cd "$tmp" && apt-get "${apt_opts[@]}" download docker-compose >/dev/null)
  dpkg -i "$tmp"/docker-compose_*.deb >/dev/null
  if ! docker compose version >/dev/null 2>&1; then
    # Some builds install only the standalone binary: expose it as a CLI plugin.
    mkdir -p "$(dirname "$COMPOSE_PLUGIN")"
    ln -sf "$(command -v docker-compose)" "$COMPOSE_PLUGIN"
  fi
  docker compose version >/dev/null 2>&1 || fail "compose v2 plugin did not install"
  changed=1
else
  step "compose plugin present: $(docker compose version --short 2>/dev/null)"
fi

if ! timeout 5 docker info >/dev/null 2>&1; then
  step "starting dockerd in the background (log: /var/log/pgchaos-dockerd.log)"
  [ -S /var/run/docker.sock ] && rm -f /var/run/docker.sock
  nohup setsid dockerd >/var/log/pgchaos-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 5 docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s (see /var/log/pgchaos-dockerd.log)"
  changed=1
else
  step "Docker engine answers: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
fi

if [ "$changed" -eq 0 ]; then
  step "nothing to do: host already set up"
else
  step "host set up"
fi
