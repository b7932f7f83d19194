#!/bin/bash
# A Citus member as a Swarm task. Swarm gives a task no DNS name of its own
# (only `tasks.<service>`), so the member finds its own address on the stack's
# overlay network (the source address of its route to the DCS) and advertises
# it for Patroni's REST API, and for PostgreSQL its Toxiproxy link pointed at that
# address (below; the address itself without Toxiproxy). Patroni registers that in
# pg_dist_node (worker groups). Name and Citus group come from the stack file
# (PATRONI_NAME / PATRONI_CITUS_GROUP, Swarm's {{.Task.Slot}} template).
set -euo pipefail
dcs=${PGCHAOS_DCS_HOST:-etcd}
peer=""
for _ in $(seq 1 120); do
  peer=$(getent ahostsv4 "$dcs" | awk 'NR == 1 {print $1}') && [ -n "$peer" ] && break
  sleep 1
done
[ -n "$peer" ] || { echo "swarm-member: $dcs does not resolve after 120 s" >&2; exit 1; }
address=$(ip -4 route get "$peer" | sed -n 's/.* src \([0-9.]*\).*/\1/p')
[ -n "$address" ] || { echo "swarm-member: no route to $dcs ($peer)" >&2; exit 1; }
postgres="$address:5432"
# With PGCHAOS_TOXIPROXY (host:port of its API), the member's PostgreSQL address is its
# own Toxiproxy link `pg-<name>` (listening on 15200+N for coordinator-N, 15300+N for
# worker-N), created here or pointed at this task's address when an earlier task of the
# slot made it. The link keeps the enabled state it had (a link a fault has cut stays
# cut), and the change is read back: Toxiproxy restarts a link's listener to change its
# upstream, and a restart that fails (its port not yet free) leaves it disabled.
if [ -n "${PGCHAOS_TOXIPROXY:-}" ]; then
  slot=${PATRONI_NAME##*-}
  case "$PATRONI_NAME" in
    coordinator-*) port=$((15200 + slot)) ;;
    worker-*) port=$((15300 + slot)) ;;
    *) echo "swarm-member: no link port for $PATRONI_NAME" >&2; exit 1 ;;
  esac
  python3 - "$PGCHAOS_TOXIPROXY" "pg-$PATRONI_NAME" "$port" "$postgres" <<'PY'
import json
import sys
import time
import urllib.error
import urllib.request

api, link, port, upstream = sys.argv[1:]
base = f"http://{api}/proxies"


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


want, last = None, "no answer"
for _ in range(60):  # bounded: about a minute
    try:
        code, proxy = call("GET", f"{base}/{link}")
        if code == 404:
            want = True if want is None else want
            code, _ = call("POST", base, {"name": link, "listen": f"0.0.0.0:{port}", "upstream": upstream,
                                          "enabled": want})
        elif code == 200:
            want = proxy["enabled"] if want is None else want
            if proxy["upstream"] == upstream and proxy["enabled"] == want:
                print(f"swarm-member: link {link} -> {upstream} ({'enabled' if want else 'disabled'})")
                sys.exit(0)
            code, _ = call("PATCH", f"{base}/{link}", {"upstream": upstream, "enabled": want})
        last = f"HTTP {code}"
    except OSError as err:
        last = str(err)
    time.sleep(0.5)
print(f"swarm-member: Toxiproxy at {api} did not take link {link} -> {upstream} ({last})", file=sys.stderr)
sys.exit(1)
PY
  postgres="${PGCHAOS_TOXIPROXY%%:*}:$port"
fi
echo "swarm-member: $PATRONI_NAME (Citus group $PATRONI_CITUS_GROUP) advertises $postgres (REST $address:8008)"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="$postgres" PATRONI_RESTAPI_CONNECT_ADDRESS="$address:8008"
exec /usr/local/bin/pgchaos-entrypoint coordinator
