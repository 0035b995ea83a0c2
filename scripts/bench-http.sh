#!/usr/bin/env bash
# HTTP load test over loopback with wrk: /healthz (baseline), GET of a template
# by label, and POST …/render, same duration and connections, one after the
# other against one server process.
#
# Usage: scripts/bench-http.sh [--duration 10s] [--connections 32] [--threads 2]
#                              [--postgres URL] [--no-build] [--classification C]
#   --postgres URL  run the server on PostgreSQL, in a fresh schema bench_<random>
#                   that is dropped at the end (needs psql); SQLite otherwise
#   --no-build      use the existing target/release/promptvault
#   --classification the benchmark template's classification (default
#                   internal; confidential and restricted are encrypted at rest)
#   --isolation I   where renders run: process (worker processes capped in
#                   memory and time; the default) or none (in the server)
#
# Target (issue): render throughput >= 0.7 x healthz throughput.
set -euo pipefail

duration=10s
connections=32
threads=2
pg_url=""
build=1
classification=internal
isolation=process
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --postgres) pg_url="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --classification) classification="$2"; shift 2 ;;
        --isolation) isolation="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 2; }
done
if [ -n "$pg_url" ]; then
    command -v psql >/dev/null || { echo "psql is required for --postgres" >&2; exit 2; }
fi

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
bin="${CARGO_TARGET_DIR:-$repo/target}/release/promptvault"
if [ "$build" = 1 ]; then
    cargo build --release -p promptvault
fi
[ -x "$bin" ] || { echo "$bin not found (build it, or drop --no-build)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/pv-bench-http.XXXXXX")"
server_pid=""
schema=""
cleanup() {
    local rc=$?
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$schema" ]; then
        psql -q -v ON_ERROR_STOP=1 "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 ||
            echo "warning: could not drop schema $schema" >&2
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

token="bench-admin-$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
export PROMPTVAULT_ADMIN_TOKEN="$token"
export PROMPTVAULT_LISTEN="127.0.0.1:0"
export PROMPTVAULT_DATA_DIR="$work/data"
unset PROMPTVAULT_CONFIG PROMPTVAULT_DATABASE_URL_FILE PROMPTVAULT_ADMIN_TOKEN_FILE
export PROMPTVAULT_RENDER__ISOLATION="$isolation"
if [ -n "$pg_url" ]; then
    schema="bench_$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
    export PROMPTVAULT_DATABASE_URL="$pg_url"
    export PROMPTVAULT_PG_SCHEMA="$schema"
    backend="postgres"
else
    unset PROMPTVAULT_DATABASE_URL
    backend="sqlite"
fi

"$bin" serve >"$work/server.log" 2>&1 &
server_pid=$!

# The server prints its address (port 0 = any free port) once it listens.
base=""
for _ in $(seq 1 300); do
    base="$(sed -n 's/.*serving on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/server.log" | head -n1)"
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; echo "the server exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { cat "$work/server.log" >&2; echo "the server did not start" >&2; exit 1; }
for _ in $(seq 1 100); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

auth="Authorization: Bearer $token"
api() { # method path [body-file]
    local args=(-fsS -X "$1" -H "$auth" "$base/api/v1$2")
    if [ $# -ge 3 ]; then args+=(-H "Content-Type: application/json" --data-binary "@$3"); fi
    curl "${args[@]}"
}

# A ~1 KB text template with five parameters (the same as the criterion bench).
name="bench/support-assistant"
path_name="bench%2Fsupport-assistant"
python3 - "$work" "$name" <<'PY'
import json, os, sys
work, name = sys.argv[1], sys.argv[2]
text = """You are the support assistant of Northwind Outfitters, a retailer of outdoor equipment.
You are talking to {{ customer_name }}, who has opened {{ ticket_count }} support tickets with us so far.
{% if tone == 'formal' %}Address the customer formally, use their full name, and avoid slang, jokes and emoji.
{% else %}Be warm and friendly, use the customer's first name, and keep the answers short.
{% endif %}
The customer owns the following products:
{% for product in products %}  {{ loop.index }}. {{ product }}
{% endfor %}
Rules:
- Answer only questions about orders, deliveries, returns, warranties and the products listed above.
- Never invent order numbers, prices or delivery dates; ask the customer for them when needed.
- When the customer asks about a product they do not own, suggest browsing the catalogue instead.
- Keep personal data out of your answers: do not repeat addresses, phone numbers or card details.
{% if escalate %}
This conversation has been flagged for escalation: apologise once, summarise the problem in two
sentences, and tell {{ customer_name }} that a human agent will follow up within one business day.
{% endif %}
End every answer by asking whether there is anything else you can help with.
"""
schema = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "customer_name": {"type": "string", "minLength": 1, "maxLength": 200},
        "tone": {"type": "string", "enum": ["warm", "formal"], "default": "warm"},
        "ticket_count": {"type": "integer", "minimum": 0},
        "products": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "maxItems": 20},
        "escalate": {"type": "boolean", "default": False},
    },
    "required": ["customer_name", "ticket_count", "products"],
    "additionalProperties": False,
}
create = {
    "name": name,
    "description": "Support assistant system prompt (benchmark)",
    "tags": ["bench", "support"],
    "template_text": text,
    "parameter_schema": schema,
    "change_description": "benchmark template",
}
render = {
    "label": "production",
    "parameters": {
        "customer_name": "Ada Lovelace",
        "tone": "formal",
        "ticket_count": 3,
        "products": ["Trailblazer 45L backpack", "Summit down jacket", "Ridge trekking poles"],
        "escalate": True,
    },
}
with open(os.path.join(work, "create.json"), "w") as f:
    json.dump(create, f)
with open(os.path.join(work, "label.json"), "w") as f:
    json.dump({"version": 1}, f)
with open(os.path.join(work, "render.json"), "w") as f:
    json.dump(render, f, separators=(",", ":"))
PY

api POST /templates "$work/create.json" >/dev/null
# `production` is protected: version 1 goes through review first (submitted
# by the admin, approved by a reviewer: four eyes), then the label moves.
echo '{}' >"$work/empty.json"
echo '{"email": "bench-reviewer@example.com", "roles": ["reviewer"]}' >"$work/reviewer.json"
echo '{"name": "bench reviewer"}' >"$work/key.json"
api POST "/templates/$path_name/versions/1/submit" "$work/empty.json" >/dev/null
reviewer_id="$(api POST /users "$work/reviewer.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
reviewer_token="$(api POST "/users/$reviewer_id/keys" "$work/key.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
curl -fsS -X POST -H "Authorization: Bearer $reviewer_token" -H "Content-Type: application/json" \
    --data-binary "@$work/empty.json" "$base/api/v1/templates/$path_name/versions/1/approve" >/dev/null
api PUT "/templates/$path_name/labels/production" "$work/label.json" >/dev/null
# Another classification once released (a confidential template's versions
# are sealed in the same transaction, its renders are sealed as written).
if [ "$classification" != internal ]; then
    echo "{\"security_classification\": \"$classification\"}" >"$work/class.json"
    etag="$(curl -fsS -D - -o /dev/null -H "$auth" "$base/api/v1/templates/$path_name?version=1" |
        sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^[:space:]]*\).*/\1/p')"
    curl -fsS -X PATCH -H "$auth" -H "If-Match: $etag" -H "Content-Type: application/json" \
        --data-binary "@$work/class.json" "$base/api/v1/templates/$path_name" >/dev/null
fi
# Warm the caches (resolved version, compiled template) and check the answers.
warmup_renders=3
for _ in $(seq 1 "$warmup_renders"); do
    api POST "/templates/$path_name/render" "$work/render.json" >"$work/render-out.json"
done
api GET "/templates/$path_name?label=production" >/dev/null
python3 - "$work/render-out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert "Ada Lovelace" in r["text"] and not r["warnings"], r
PY

# One Lua script per run: headers/body for the request, and a done() hook
# that writes the summary in a form the table below reads.
lua_script() { # file result-file [render]
    {
        echo "wrk.headers[\"Authorization\"] = \"Bearer $token\""
        if [ "${3:-}" = render ]; then
            echo 'wrk.method = "POST"'
            echo 'wrk.headers["Content-Type"] = "application/json"'
            printf 'wrk.body = [==[%s]==]\n' "$(cat "$work/render.json")"
        fi
        cat <<LUA
done = function(summary, latency, requests)
  local f = io.open("$2", "w")
  f:write(string.format("requests=%d\nduration_us=%d\np50_us=%d\np99_us=%d\nmax_us=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max))
  f:write(string.format("status_errors=%d\nconnect_errors=%d\nread_errors=%d\nwrite_errors=%d\ntimeouts=%d\n",
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
  f:close()
end
LUA
    } >"$1"
}

run() { # label url [render]
    local script="$work/$1.lua"
    lua_script "$script" "$work/$1.result" "${3:-}"
    echo "== wrk $1: $2 (${duration}, ${connections} connections, ${threads} threads)"
    wrk --latency -t "$threads" -c "$connections" -d "$duration" -s "$script" "$2" >"$work/$1.wrk"
    sed -n '/Thread Stats/,/Requests\/sec/p' "$work/$1.wrk"
}

run healthz "$base/healthz"
run get "$base/api/v1/templates/$path_name?label=production"
run render "$base/api/v1/templates/$path_name/render" render

# Every accepted render must have been recorded (the metrics call flushes the queue).
recorded="$(api GET "/templates/$path_name/metrics" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["times_used"])')"
# The server's own count of renders answered with 200 (Prometheus counter).
answered="$(curl -fsS "$base/metrics" | python3 -c '
import re, sys
total = 0
for line in sys.stdin:
    if line.startswith("http_requests_total{") and "route=\"/api/v1/templates/{name}/render\"" in line \
            and "status=\"200\"" in line and "method=\"POST\"" in line:
        total += int(float(line.rsplit(" ", 1)[1]))
print(total)')"

kill -TERM "$server_pid"
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=""

python3 - "$work" "$backend" "$duration" "$connections" "$threads" "$recorded" "$warmup_renders" "$server_rc" "$answered" <<'PY'
import os, sys
work, backend, duration, conns, threads = sys.argv[1:6]
recorded, warmup, server_rc, answered = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])

def load(name):
    out = {}
    for line in open(os.path.join(work, name + ".result")):
        k, v = line.strip().split("=")
        out[k] = int(v)
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    out["errors"] = sum(out[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts"))
    return out

runs = {n: load(n) for n in ("healthz", "get", "render")}
print()
print(f"backend={backend} duration={duration} connections={conns} threads={threads} isolation={os.environ.get('PROMPTVAULT_RENDER__ISOLATION', 'process')}")
print(f"{'endpoint':<10}{'requests':>10}{'req/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")
for n, r in runs.items():
    print(f"{n:<10}{r['requests']:>10}{r['rps']:>11.0f}{r['p50_us']/1000:>9.2f}{r['p99_us']/1000:>9.2f}"
          f"{r['max_us']/1000:>9.2f}{r['errors']:>8}")
h = runs["healthz"]["rps"]
ratio_render = runs["render"]["rps"] / h
ratio_get = runs["get"]["rps"] / h
print()
print(f"render/healthz = {ratio_render:.2f}  (target >= 0.70): {'MET' if ratio_render >= 0.7 else 'MISSED'}")
print(f"get/healthz    = {ratio_get:.2f}")
counted = runs["render"]["requests"] + warmup
print()
print(f"renders recorded (metrics total.times_used) = {recorded}")
print(f"renders the server answered with 200 (its http_requests_total) = {answered}")
print(f"renders wrk completed = {runs['render']['requests']} + {warmup} warm-up (curl) = {counted}")
if recorded == answered:
    print("usage records vs server 200s: MATCH")
elif answered < recorded <= answered + int(conns):
    # A render is recorded when it completes; the 200 is counted when the
    # answer leaves. wrk closing a connection in between (when it stops)
    # leaves a recorded render whose answer nobody took: at most one per
    # connection, and nothing is lost.
    print(f"usage records vs server 200s: {recorded - answered:+d} (renders done for requests wrk abandoned when it stopped; at most {conns}); none lost")
else:
    print(f"usage records vs server 200s: MISMATCH by {recorded - answered:+d}")
if recorded == counted:
    print("usage records vs wrk: MATCH")
else:
    # wrk stops its clock with requests still in flight (at most one per
    # connection) and does not count them; the server still answers and
    # records them.
    diff = recorded - counted
    verdict = "requests in flight when wrk stopped" if 0 < diff <= int(conns) else "UNEXPLAINED"
    print(f"usage records vs wrk: {diff:+d} ({verdict})")
print(f"server exit status after SIGTERM: {server_rc} ({'graceful' if server_rc == 0 else 'NOT graceful'})")
bad = sum(r["errors"] for r in runs.values())
if bad:
    print(f"WARNING: {bad} wrk errors (non-2xx, socket errors or timeouts)")
PY
[ "$server_rc" = 0 ]
