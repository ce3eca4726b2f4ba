#!/usr/bin/env bash
# How long `touchline report` takes on a large customer base: the bundled definitions over
# ACCOUNTS generated accounts (default 100 000) after their go-live pass and DAYS daily
# passes (default 3), reported over the last 30 days as text, JSON and HTML. Release build.
#
#   benches/report.sh [ACCOUNTS] [DAYS]
set -euo pipefail
accounts="${1:-100000}"
days="${2:-3}"
# shellcheck source=benches/large-example.sh
source "$(dirname "$0")/large-example.sh" "$accounts"
for day in $(seq 0 "$days"); do
  now=$(date -u -d "2026-11-16T09:00:00Z + $day days" +%Y-%m-%dT%H:%M:%SZ)
  "$touchline" "${db[@]}" tick --now "$now" >/dev/null
done
echo "$accounts accounts, $((days + 1)) passes"
for format in text json html; do
  out=(--format "$format")
  [ "$format" = html ] && out+=(--out report.html)
  seconds=$( { /usr/bin/time -f "%e s, peak RSS %M KiB" "$touchline" "${db[@]}" report \
    --from 2026-10-20 --to 2026-11-20 "${out[@]}" >"report.$format.out"; } 2>&1 | tail -1 )
  echo "report --format $format: $seconds"
done
grep -E "^(!!|  )[a-z-]+/[a-z-]+ \(" report.text.out | head -5 || true
