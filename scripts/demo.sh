#!/usr/bin/env bash
# make demo: gemini-edge-pool under Viceroy on 127.0.0.1:7676, in front of the bundled Gemini
# simulator (sample keys, one sample client token). Ctrl-C stops both.
# make demo-cf (`--workers`): the same on the Cloudflare Workers edge, under `wrangler dev`.
set -euo pipefail
cd "$(dirname "$0")/.."

PROXY_ADDR=${PROXY_ADDR:-127.0.0.1:7676}
SIM_PORT=${SIM_PORT:-9100}
TOKEN=demo-token
TEAM=demo-team
ADMIN=demo-admin
# The second client's policy (docs/policies.md): an OpenAI model name mapped to Gemini, and limits.
POLICY='{"aliases": {"gpt-4o-mini": "gemini-3.5-flash"}, "rpm": 5, "tokens_per_day": 5000}'
DIR=.local/demo
mkdir -p "$DIR"

# Three sample keys: two share a Google project, so a quota verdict on one cools both. One is
# an `AIza…` key, two are `AQ.…` keys like those AI Studio has issued since mid-2026.
cat > "$DIR/keys.txt" <<KEYS
AIzaSyDEMO000000000000000000000000001
demo-project:AQ.Ab8RN6DEMO0000000000000000000000000000000000002
demo-project:AQ.Ab8RN6DEMO0000000000000000000000000000000000003
KEYS
cat > "$DIR/sim.json" <<JSON
{"keys": [
  {"key": "AIzaSyDEMO000000000000000000000000001", "label": "demo-1"},
  {"key": "AQ.Ab8RN6DEMO0000000000000000000000000000000000002", "label": "demo-2", "project": "demo-project"},
  {"key": "AQ.Ab8RN6DEMO0000000000000000000000000000000000003", "label": "demo-3", "project": "demo-project"}
 ],
 "projects": {"demo-1": {"rpm": {"*": 10}, "rpd": {"*": 250}, "limit_zero": ["gemini-3.1-pro-preview"]},
              "demo-project": {"rpm": {"*": 10}, "rpd": {"*": 250}}},
 "chunk_delay_ms": 150}
JSON
echo "{\"$TOKEN\": \"demo client\", \"$TEAM\": \"demo team\"}" > "$DIR/auth_tokens.json"
python3 -c 'import json, sys; print(json.dumps({"demo team": sys.argv[1]}))' "$POLICY" > "$DIR/client_policies.json"
echo "{\"$ADMIN\": \"demo operator\"}" > "$DIR/admin_tokens.json"
echo '{}' > "$DIR/proxy_settings.json"
cat > "$DIR/fastly.toml" <<TOML
[local_server.backends.gemini]
url = "http://127.0.0.1:$SIM_PORT"
first_byte_timeout_ms = 300000
between_bytes_timeout_ms = 120000
[local_server.config_stores.auth_tokens]
format = "json"
file = "$DIR/auth_tokens.json"
[local_server.config_stores.admin_tokens]
format = "json"
file = "$DIR/admin_tokens.json"
[local_server.config_stores.proxy_settings]
format = "json"
file = "$DIR/proxy_settings.json"
[local_server.config_stores.client_policies]
format = "json"
file = "$DIR/client_policies.json"
[local_server.secret_stores]
gemini_keys = [{ key = "keys", file = "$DIR/keys.txt" }]
[local_server.kv_stores]
key_state = []
TOML

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

target/release/gemini-sim --port "$SIM_PORT" --config "$DIR/sim.json" &
pids+=($!)
if [[ "${1:-}" == "--workers" ]]; then
  # The Workers edge: its configuration as a user of the original Worker writes it.
  CF="$DIR/workers"
  mkdir -p "$CF"
  cat > "$CF/wrangler.toml" <<TOML
name = "gemini-edge-pool-demo"
main = "$PWD/cloudflare/build/worker/shim.mjs"
compatibility_date = "2025-09-01"
[vars]
GEMINI_BASE_URL = "http://127.0.0.1:$SIM_PORT"
LOAD_BALANCE_STRATEGY = "round-robin"
[[durable_objects.bindings]]
name = "POOL_STATE"
class_name = "StateObject"
[[migrations]]
tag = "v1"
new_sqlite_classes = ["StateObject"]
TOML
  keys=$(paste -sd, "$DIR/keys.txt")
  printf 'GEMINI_API_KEYS="%s"\nVALID_AUTH_TOKENS="%s=demo client,%s=demo team"\nADMIN_TOKENS="%s=demo operator"\n' \
    "$keys" "$TOKEN" "$TEAM" "$ADMIN" > "$CF/.dev.vars"
  python3 -c 'import json, sys; print("CLIENT_POLICIES=\x27" + json.dumps({"demo team": json.loads(sys.argv[1])}) + "\x27")' \
    "$POLICY" >> "$CF/.dev.vars"
  (cd "$CF" && WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false CI=1 "$OLDPWD/cloudflare/node_modules/.bin/wrangler" dev \
    --ip "${PROXY_ADDR%:*}" --port "${PROXY_ADDR##*:}" --persist-to state --show-interactive-dev-session=false) &
else
  viceroy serve -C "$DIR/fastly.toml" --addr "$PROXY_ADDR" bin/main.wasm &
fi
pids+=($!)

for _ in $(seq 1 600); do
  curl -s -o /dev/null "http://$PROXY_ADDR/v1/status" && break
  sleep 0.1
done

cat <<MSG

gemini-edge-pool demo is running on http://$PROXY_ADDR (simulated Gemini on :$SIM_PORT).
Client token: $TOKEN
Console: http://$PROXY_ADDR/ — sign in with the admin token $ADMIN

Try it:

curl http://$PROXY_ADDR/v1/chat/completions -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' -d '{"model": "gemini-3.5-flash", "messages": [{"role": "user", "content": "Hello"}]}'

curl -N http://$PROXY_ADDR/v1/chat/completions -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' -d '{"model": "gemini-3.5-flash", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}'

curl http://$PROXY_ADDR/v1/status -H 'Authorization: Bearer $TOKEN'

The second client, $TEAM ("demo team"), has a policy: gpt-4o-mini means gemini-3.5-flash (and is
named so in the answer), 5 requests a minute, 5,000 tokens a day (x-ratelimit-* headers):

curl -i http://$PROXY_ADDR/v1/chat/completions -H 'Authorization: Bearer $TEAM' -H 'Content-Type: application/json' -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'

curl "http://$PROXY_ADDR/v1/usage?by=client,model" -H 'Authorization: Bearer $ADMIN'

Each sample project allows 10 requests per minute per model; gemini-3.1-pro-preview has no free tier
on demo-1 (limit: 0). Send a few more requests and watch /v1/status cool the keys.
Ctrl-C stops the demo.
MSG
wait
