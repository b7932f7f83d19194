#!/bin/sh
# pgchaos swarm node: make /sys and the cgroup hierarchies writable (the node
# runs without --privileged), then run the inner engine on a unix socket in
# /run/pgchaos-node (a folder the host binds in, so the host reaches this engine
# without any TCP port).
set -e
mount -o remount,rw /sys 2>/dev/null || true
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
for hierarchy in /sys/fs/cgroup/*; do
  [ -d "$hierarchy" ] && mount -o remount,bind,rw "$hierarchy" 2>/dev/null || true
done
mkdir -p /run/pgchaos-node
# a node that was killed or stopped starts again with its runtime state gone (pid
# files name processes that no longer exist, or others now)
rm -rf /run/pgchaos-node/docker.sock /run/docker.pid /run/docker /run/containerd
exec dockerd --host=unix:///run/pgchaos-node/docker.sock --host=unix:///var/run/docker.sock \
  --storage-driver=overlay2 --log-level=warn ${PGCHAOS_NODE_DOCKERD_ARGS:-}
