#!/usr/bin/env bash
# How long `touchline plan` takes on a large customer base: the bundled definitions over
# ACCOUNTS generated accounts (default 100 000) after their go-live pass, planned 14 days
# ahead with daily passes, alone and against a one-line edit. Release build.
#
#   benches/plan.sh [ACCOUNTS]
set -euo pipefail
accounts="${1:-100000}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
touchline="${CARGO_TARGET_DIR:-$repo/target}/release/touchline"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$repo/touchline.yaml" "$repo/journeys" "$repo/scripts" "$repo/templates" "$work/"
cd "$work"
# The go-live pass delivers; its webhooks go to a closed local port (refused at once)
# rather than to the example's hosts, which do not exist.
sed -i -e 's#url: https://crm.fleetwise.example/hooks/touchline#url: http://127.0.0.1:9/crm\n    allow_private: true#' \
  -e 's#url: https://hooks.slack.example/services/T000/B000/cs-alerts#url: http://127.0.0.1:9/slack\n    allow_private: true#' touchline.yaml
db=(--database "sqlite://$work/plan.db")
"$touchline" generate --accounts "$accounts" --out data --until 2026-11-16 >/dev/null
for kind in accounts contacts metrics; do
  "$touchline" "${db[@]}" import "$kind" "data/$kind.csv" >/dev/null
done
"$touchline" "${db[@]}" import events data/events.jsonl >/dev/null
go_live=$( { /usr/bin/time -f %e "$touchline" "${db[@]}" tick --now 2026-11-16T09:00:00Z >/dev/null; } 2>&1 )
echo "go-live pass over $accounts accounts: ${go_live} s"
sha_before=$(sha256sum plan.db | cut -d' ' -f1)
mkdir edited && cp -r touchline.yaml journeys scripts templates edited/
sed -i "s/condition: 'account.scores.utilization < 40'/condition: 'account.scores.utilization < 60'/" \
  edited/journeys/utilization-rescue.yaml
for against in "" "--against edited"; do
  # shellcheck disable=SC2086
  seconds=$( { /usr/bin/time -f "%e s, peak RSS %M KiB" "$touchline" "${db[@]}" plan --now 2026-11-17T09:00:00Z $against >plan.txt; } 2>&1 )
  echo "plan ${against:-(live definitions only)}: $seconds"
  grep -E "^utilization-rescue|passes," plan.txt || true
done
[ "$(sha256sum plan.db | cut -d' ' -f1)" = "$sha_before" ] && echo "database unchanged"
