#!/usr/bin/env bash
# Render overhead: runs the criterion group `render` (crates/core/benches/render.rs)
# and prints median(promptvault/render) / median(baseline/minijinja).
#
# Usage: scripts/bench-render.sh [extra criterion args, e.g. --measurement-time 10]
# Targets (issue): ratio <= 1.5 and promptvault/render median <= 10 us.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
criterion_dir="${CRITERION_HOME:-$target_dir/criterion}/render"

cargo bench -p promptvault-core --bench render -- --noplot "$@"

python3 - "$criterion_dir" <<'PY'
import json, os, sys

root = sys.argv[1]

def median_ns(bench):
    # criterion replaces "/" in a benchmark id with "_" in the directory name
    path = os.path.join(root, bench.replace("/", "_"), "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]

base = median_ns("baseline/minijinja")
ours = median_ns("promptvault/render")
comp = median_ns("promptvault/compile")
ratio = ours / base
print()
print(f"{'benchmark':<24}{'median':>12}")
for name, ns in (("baseline/minijinja", base), ("promptvault/render", ours), ("promptvault/compile", comp)):
    print(f"{name:<24}{ns / 1000:>10.2f} us")
print()
ok_ratio = ratio <= 1.5
ok_abs = ours <= 10_000
print(f"ratio render/baseline = {ratio:.2f}  (target <= 1.50): {'MET' if ok_ratio else 'MISSED'}")
print(f"render median = {ours / 1000:.2f} us  (target <= 10 us): {'MET' if ok_abs else 'MISSED'}")
PY
