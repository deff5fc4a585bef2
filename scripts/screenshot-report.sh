#!/usr/bin/env bash
# Screenshot a report.html with headless chromium (offline, throwaway profile), to check it renders.
# usage: scripts/screenshot-report.sh reports/NAME/report.html [out.png] [WIDTHxHEIGHT]
set -euo pipefail
html=${1:?usage: $0 report.html [out.png] [1200,3000]}
out=${2:-out.png}
size=${3:-1200,3000}
chromium=${CHROMIUM:-/usr/bin/chromium}
[[ -x $chromium ]] || { echo "error: $chromium not found (apt-get install -y chromium)" >&2; exit 2; }
[[ -f $html ]] || { echo "error: $html not found" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --screenshot="$(realpath -m "$out")" \
  --window-size="$size" "file://$(realpath "$html")" >/dev/null 2>&1
[[ -s $out ]] || { echo "error: chromium wrote no screenshot" >&2; exit 1; }
echo "$out"
