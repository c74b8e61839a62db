#!/usr/bin/env bash
# make serve: gemini-edge-pool under Viceroy on 127.0.0.1:7676 in front of the real Gemini API.
#
# Keys and tokens come from the environment or from the git-ignored file local.env:
#   GEMINI_API_KEYS   API keys separated by newlines or commas (`project:KEY` to group by project)
#   AUTH_TOKENS       client tokens separated by commas; `token=label` to name who holds each
#   ADMIN_TOKENS      optional admin tokens, same form (the console's key check and usage)
#   PROXY_SETTINGS    optional knobs, e.g. "max_attempts=4,cooling_profile=smart"
# `scripts/serve.sh --prepare` only writes .local/ (then `fastly compute serve` works too).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -f local.env ]]; then
  set -a; source local.env; set +a
fi
if [[ -z "${GEMINI_API_KEYS:-}" || -z "${AUTH_TOKENS:-}" ]]; then
  cat >&2 <<'MSG'
make serve needs GEMINI_API_KEYS and AUTH_TOKENS, in the environment or in local.env:

  GEMINI_API_KEYS="AIza...one,AIza...two"
  AUTH_TOKENS="my-app-token=my app"

(local.env is git-ignored. For a run without real keys: make demo)
MSG
  exit 2
fi

mkdir -p .local
python3 - <<'PY'
import json, os
def pairs(text, sep="="):
    out = {}
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if item:
            name, _, value = item.partition(sep)
            out[name.strip()] = value.strip() or "client"
    return out
json.dump(pairs(os.environ["AUTH_TOKENS"]), open(".local/auth_tokens.json", "w"))
json.dump(pairs(os.environ.get("ADMIN_TOKENS", "")), open(".local/admin_tokens.json", "w"))
json.dump(pairs(os.environ.get("PROXY_SETTINGS", "")), open(".local/proxy_settings.json", "w"))
PY
export GEMINI_API_KEYS
[[ "${1:-}" == "--prepare" ]] && { echo "wrote .local/auth_tokens.json, .local/admin_tokens.json and .local/proxy_settings.json"; exit 0; }

echo "gemini-edge-pool on http://${PROXY_ADDR:-127.0.0.1:7676} -> generativelanguage.googleapis.com"
echo "console: http://${PROXY_ADDR:-127.0.0.1:7676}/ (sign in with a token from ADMIN_TOKENS)"
exec viceroy serve -C fastly.toml --addr "${PROXY_ADDR:-127.0.0.1:7676}" bin/main.wasm
