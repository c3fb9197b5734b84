#!/bin/sh
# tests/analysis/html_check.sh — the report page in headless Chromium: it must load without console
# errors and its screenshot must not be blank.
#   html_check.sh <kiln_analysis_sample_report> <work dir>
# Exit 77 (CTest's SKIP_RETURN_CODE) only when no chromium is installed (Debian: apt-get install
# chromium). A probe page that logs console.error proves first that the log capture works, so a
# Chromium whose logging changed cannot make this test pass vacuously.
set -u
sample=$1
dir=$2
chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$chromium" ]; then
  echo "SKIPPED: chromium is not installed (apt-get install chromium); the page was not checked"
  exit 77
fi
rm -rf "$dir" && mkdir -p "$dir"
"$sample" write "$dir" || { echo "FAIL: could not write the sample report"; exit 1; }

# run <page> <screenshot> <log>: headless load with console messages logged to stderr.
run() {
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-dev-shm-usage --user-data-dir="$dir/profile" --hide-scrollbars \
    --enable-logging=stderr --v=0 --window-size=1400,2400 \
    --screenshot="$2" "file://$1" >"$3" 2>&1
}

run "$dir/probe.html" "$dir/probe.png" "$dir/probe.log"
if ! grep -q "kiln-probe-console-error" "$dir/probe.log"; then
  echo "FAIL: Chromium's log did not show the probe page's console.error; cannot check the report"
  cat "$dir/probe.log"
  exit 1
fi

run "$dir/report.html" "$dir/report.png" "$dir/report.log"
status=$?
if [ $status -ne 0 ] || [ ! -s "$dir/report.png" ]; then
  echo "FAIL: chromium exited with $status and no screenshot"
  cat "$dir/report.log"
  exit 1
fi
# Console messages appear as ":INFO:CONSOLE(line)" (or CONSOLE with another level); any at all from
# the page is a failure, as are failed loads of its resources.
if grep -E "CONSOLE|Failed to load|net::ERR" "$dir/report.log"; then
  echo "FAIL: the report page logged the console messages above"
  exit 1
fi
"$sample" check-png "$dir/report.png" || { echo "FAIL: the screenshot is blank"; exit 1; }
echo "PASS: report.html loads in $("$chromium" --version 2>/dev/null) without console messages"
