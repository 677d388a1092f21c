#!/usr/bin/env bash
# Register the CodingTask search attributes on a running Temporal server (idempotent).
#
#   scripts/register_search_attributes.sh                      # TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE or defaults
#   TEMPORAL_ADDRESS=temporal:7233 scripts/register_search_attributes.sh
#
# Uses the `temporal` CLI (TEMPORAL_CLI overrides which one). The dev server can register them at start instead:
#   temporal server start-dev --search-attribute TaskStatus=Keyword --search-attribute Agent=Keyword ...
# (scripts/search_attribute_flags.sh prints those flags).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
temporal="${TEMPORAL_CLI:-temporal}"
if ! command -v "$temporal" >/dev/null 2>&1 && [ -x "$here/../.venv/bin/temporal" ]; then
  temporal="$here/../.venv/bin/temporal"
fi
address="${TEMPORAL_ADDRESS:-localhost:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"

# name type — keep in step with SEARCH_ATTRIBUTES in workflows/models.py (tests/test_search_attributes.py checks)
attributes=(
  "TaskStatus Keyword"
  "Agent Keyword"
  "CodeModel Keyword"
  "DocModel Keyword"
  "LintScore Double"
  "FeedbackRating Int"
  "TotalTokens Int"
  "Owner Keyword"
)

existing="$("$temporal" operator search-attribute list --address "$address" --namespace "$namespace" -o json)"
for entry in "${attributes[@]}"; do
  read -r name type <<<"$entry"
  if grep -q "\"$name\"" <<<"$existing"; then
    echo "search attribute $name already registered"
    continue
  fi
  "$temporal" operator search-attribute create --address "$address" --namespace "$namespace" \
    --name "$name" --type "$type"
  echo "registered search attribute $name ($type)"
done
