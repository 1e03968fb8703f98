#!/usr/bin/env bash
# Checks the Swift processing package (EdgeSamKit) against test vectors written by the Python
# SDK, with `swift test` (Linux or macOS; Foundation and XCTest only).
# Needs: swift (5.10+ toolchain with Swift 6 language mode; $SWIFT overrides which) and, unless
# a vectors folder written earlier is passed (./test_processing.sh DIR), the SDK: the repo's
# .venv/bin/edgesam, else `edgesam` on PATH, else `python -m edge_sam_sdk.cli`.
# Exit status 0 only when every vector check passes (and at least one ran).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
build="$here/build"
mkdir -p "$build"
swift="${SWIFT:-$(command -v swift || true)}"
[[ -n "$swift" ]] || { echo "swift not found (set SWIFT=/path/to/swift)" >&2; exit 1; }
if [[ $# -ge 1 ]]; then
    vectors="$(cd "$1" && pwd)"
else
    vectors="$build/vectors"
    if [[ -x "$root/.venv/bin/edgesam" ]]; then
        edgesam=("$root/.venv/bin/edgesam")
    elif command -v edgesam >/dev/null 2>&1; then
        edgesam=(edgesam)
    else
        edgesam=(python -m edge_sam_sdk.cli)
    fi
    "${edgesam[@]}" vectors --out "$vectors" --overwrite >/dev/null 2>"$build/vectors.log" \
        || { cat "$build/vectors.log" >&2; echo "writing the vectors failed" >&2; exit 1; }
fi
echo "swift test of EdgeSamKit with $("$swift" --version 2>&1 | grep -o 'Swift version [^ ]*' | head -1), vectors $vectors"
log="$build/swift-test.log"
set +e
EDGESAM_VECTORS="$vectors" "$swift" test --package-path "$here/EdgeSamKit" >"$log" 2>&1
status=$?
set -e
grep -E '^FAIL |error:|skipped|^SUMMARY' "$log" | head -40 || true
grep -E "^Test Suite 'All tests'|Executed [0-9]+ tests" "$log" | tail -1 || true
summary="$(grep -E '^SUMMARY [0-9]+/[0-9]+ checks passed' "$log" | tail -1 || true)"
if [[ $status -ne 0 ]]; then
    echo "swift test failed (exit $status); full log: $log" >&2
    exit 1
fi
if [[ -z "$summary" ]] || grep -q "skipped" <(grep "VectorTests" "$log"); then
    echo "the vector test did not run (no SUMMARY line or it was skipped); full log: $log" >&2
    exit 1
fi
read -r passed total <<<"$(sed -E 's#^SUMMARY ([0-9]+)/([0-9]+).*#\1 \2#' <<<"$summary")"
if [[ "$total" -eq 0 || "$passed" -ne "$total" ]]; then
    echo "$summary: not every vector passed; full log: $log" >&2
    exit 1
fi
echo "$passed/$total checks passed"
