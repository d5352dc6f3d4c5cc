#!/bin/sh
# A rota worker in shell: `rota worker --queue reports --exec docs/workers/report.sh`.
# The payload arrives on stdin; the job in ROTA_* variables.
set -eu
payload=$(cat)
echo "tenant=$ROTA_TENANT kind=$ROTA_KIND attempt=$ROTA_ATTEMPT schedule=${ROTA_SCHEDULE:-} at=${ROTA_OCCURRENCE:-}" >&2
case "$payload" in
  *'"busy":true'*)
    # Not now: ask for another attempt in 30 s.
    echo "retry-after: 30" >&2
    exit 75 ;;
esac
# What goes to stdout is the job's result (JSON, or any text).
printf '{"tenant":"%s","bytes":%s}\n' "$ROTA_TENANT" "$(printf %s "$payload" | wc -c)"
