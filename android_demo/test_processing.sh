#!/usr/bin/env bash
# Checks the Kotlin processing module against test vectors written by the Python SDK.
# Needs: kotlinc (Debian: apt-get install kotlin) and java; python with edgesam installed
# (or pass a vectors folder written earlier: ./test_processing.sh DIR).
# Exit status 0 only when every vector passes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/build"
mkdir -p "$build"
if [[ $# -ge 1 ]]; then
    vectors="$1"
else
    vectors="$build/vectors"
    python -m edge_sam_sdk.cli vectors --out "$vectors" --overwrite
fi
echo "compiling the processing module and its tests with $(kotlinc -version 2>&1 | grep -o 'kotlinc-jvm [^ ]*')"
kotlinc -nowarn "$here/processing/src/main/kotlin" "$here/processing/src/test/kotlin" \
    -include-runtime -d "$build/processing-tests.jar" 2>&1 | grep -v "warning: Options -Xverify" || true
[[ -f "$build/processing-tests.jar" ]] || { echo "kotlinc failed" >&2; exit 1; }
java -jar "$build/processing-tests.jar" "$vectors" | tee "$build/processing-tests.log" | grep -v '^PASS' || true
test "${PIPESTATUS[0]}" -eq 0
