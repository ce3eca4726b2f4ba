# Shared by the benchmark scripts (sourced, not run): builds touchline in release mode and
# makes a working copy of the bundled definitions with ACCOUNTS generated customers
# imported into $work/bench.db. Sets: repo, touchline, work, db.
#
#   source "$(dirname "$0")/large-example.sh" ACCOUNTS
accounts="$1"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
touchline="${CARGO_TARGET_DIR:-$repo/target}/release/touchline"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$repo/touchline.yaml" "$repo/journeys" "$repo/scripts" "$repo/templates" "$work/"
cd "$work"
# Webhooks go to a closed local port (refused at once) rather than to the example's hosts,
# which do not exist.
sed -i -e 's#url: https://crm.fleetwise.example/hooks/touchline#url: http://127.0.0.1:9/crm\n    allow_private: true#' \
  -e 's#url: https://hooks.slack.example/services/T000/B000/cs-alerts#url: http://127.0.0.1:9/slack\n    allow_private: true#' touchline.yaml
db=(--database "sqlite://$work/bench.db")
"$touchline" generate --accounts "$accounts" --out data --until 2026-11-16 >/dev/null
for kind in accounts contacts metrics; do
  "$touchline" "${db[@]}" import "$kind" "data/$kind.csv" >/dev/null
done
"$touchline" "${db[@]}" import events data/events.jsonl >/dev/null
