#!/usr/bin/env bash
# Checks the Kotlin processing module against test vectors written by the Python SDK.
# Needs: kotlinc (Debian: apt-get install kotlin) and java; the SDK to write the vectors: the
# repo's .venv/bin/edgesam, else `edgesam` on PATH, else `python -m edge_sam_sdk.cli` (or pass
# a vectors folder written earlier: ./test_processing.sh DIR).
# Exit status 0 only when every vector passes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
build="$here/build"
mkdir -p "$build"
if [[ $# -ge 1 ]]; then
    vectors="$1"
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
echo "compiling the processing module and its tests with $(kotlinc -version 2>&1 | grep -o 'kotlinc-jvm [^ ]*')"
kotlinc -nowarn "$here/processing/src/main/kotlin" "$here/processing/src/test/kotlin" \
    -include-runtime -d "$build/processing-tests.jar" 2>&1 | grep -v "warning: Options -Xverify" || true
[[ -f "$build/processing-tests.jar" ]] || { echo "kotlinc failed" >&2; exit 1; }
java -jar "$build/processing-tests.jar" "$vectors" | tee "$build/processing-tests.log" | grep -v '^PASS' || true
test "${PIPESTATUS[0]}" -eq 0
