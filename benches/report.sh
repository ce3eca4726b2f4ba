#!/usr/bin/env bash
# How long `touchline report` takes on a large customer base: the bundled definitions over
# ACCOUNTS generated accounts (default 100 000) after their go-live pass and DAYS daily
# passes (default 3), reported over the last 30 days as text, JSON and HTML. Release build.
#
#   benches/report.sh [ACCOUNTS] [DAYS]
set -euo pipefail
accounts="${1:-100000}"
days="${2:-3}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
touchline="${CARGO_TARGET_DIR:-$repo/target}/release/touchline"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$repo/touchline.yaml" "$repo/journeys" "$repo/scripts" "$repo/templates" "$work/"
cd "$work"
# Webhooks go to a closed local port (refused at once) rather than to the example's hosts.
sed -i -e 's#url: https://crm.fleetwise.example/hooks/touchline#url: http://127.0.0.1:9/crm\n    allow_private: true#' \
  -e 's#url: https://hooks.slack.example/services/T000/B000/cs-alerts#url: http://127.0.0.1:9/slack\n    allow_private: true#' touchline.yaml
db=(--database "sqlite://$work/report.db")
"$touchline" generate --accounts "$accounts" --out data --until 2026-11-16 >/dev/null
for kind in accounts contacts metrics; do
  "$touchline" "${db[@]}" import "$kind" "data/$kind.csv" >/dev/null
done
"$touchline" "${db[@]}" import events data/events.jsonl >/dev/null
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
