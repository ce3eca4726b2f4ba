#!/usr/bin/env bash
# How long `touchline plan` takes on a large customer base: the bundled definitions over
# ACCOUNTS generated accounts (default 100 000) after their go-live pass, planned 14 days
# ahead with daily passes, alone and against a one-line edit. Release build.
#
#   benches/plan.sh [ACCOUNTS]
set -euo pipefail
accounts="${1:-100000}"
# shellcheck source=benches/large-example.sh
source "$(dirname "$0")/large-example.sh" "$accounts"
go_live=$( { /usr/bin/time -f %e "$touchline" "${db[@]}" tick --now 2026-11-16T09:00:00Z >/dev/null; } 2>&1 )
echo "go-live pass over $accounts accounts: ${go_live} s"
sha_before=$(sha256sum bench.db | cut -d' ' -f1)
mkdir edited && cp -r touchline.yaml journeys scripts templates edited/
sed -i "s/condition: 'account.scores.utilization < 40'/condition: 'account.scores.utilization < 60'/" \
  edited/journeys/utilization-rescue.yaml
for against in "" "--against edited"; do
  # shellcheck disable=SC2086
  seconds=$( { /usr/bin/time -f "%e s, peak RSS %M KiB" "$touchline" "${db[@]}" plan --now 2026-11-17T09:00:00Z $against >plan.txt; } 2>&1 )
  echo "plan ${against:-(live definitions only)}: $seconds"
  grep -E "^utilization-rescue|passes," plan.txt || true
done
[ "$(sha256sum bench.db | cut -d' ' -f1)" = "$sha_before" ] && echo "database unchanged"
