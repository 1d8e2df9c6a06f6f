#!/usr/bin/env bash
# The checks a test run skipped, from the log the tests append to (WGBERT_SKIP_LOG, one line
# per skip: test, capability, why, which checks; tests/common/require.rs): their number, then
# each reason with its count, most frequent first. Usage: bash scripts/skip_report.sh LOG
set -euo pipefail
log="${1:?usage: skip_report.sh LOG}"
n=0
[ -s "$log" ] && n="$(wc -l <"$log")"
if [ "$n" -eq 0 ]; then
  echo "== no checks skipped"
  exit 0
fi
echo "== $n checks skipped:"
awk -F'\t' '{ print $2 ": " $3 }' "$log" | sort | uniq -c | sort -rn
echo "   (tests/common/require.rs; WGBERT_REQUIRE=<capabilities> makes them failures)"
