#!/usr/bin/env bash
# demo-traffic.sh BIN DEMO PORT: the demo's service with two A/B variants, shoppers
# simulated through it (loadtests/traffic.py: they click and buy by their tastes), the
# report of what the lists earned, then the service in the foreground with its dashboard.
set -euo pipefail
bin="$1" demo="$2" port="$3"
cat > "$demo/rules.toml" <<'RULES'
[variants.control]
share = 50
[variants.popular_heavy]
share = 50
weights = { popularity = 2.0 }
RULES
export RECSVC_API_KEY="${RECSVC_API_KEY:-demo-key}" RECSVC_RULES_FILE="$demo/rules.toml"
"$bin/recsvc" serve --model-root "$demo/models" --host 127.0.0.1 --port "$port" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || { echo "the service did not start" >&2; exit 1; }
    sleep 1
done
"$bin/python" loadtests/traffic.py --url "http://127.0.0.1:$port" --store "$demo/data" \
    --shoppers 300
sleep 1  # the impression log is written four times a second
"$bin/recsvc" report --model-root "$demo/models" --days 1 --rules-file "$demo/rules.toml"

echo "serving on http://127.0.0.1:$port (try /recommend?user_id=U1 and /docs);"
echo "dashboard: http://127.0.0.1:$port/dashboard (operator key: $RECSVC_API_KEY); Ctrl-C stops"
wait "$server"
