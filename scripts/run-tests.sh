#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 / Ubuntu machine (run as root):
#   1. scripts/setup-host.sh: packages, Docker engine + buildx, dockerd, the proxy,
#      .venv (JupyterHub 5.x) and .venv-jh6 (JupyterHub 6.x);
#   2. every test in tests/ and ui-tests/ with JupyterHub 5.x;
#   3. the hook tests, the end-to-end spawn test and the catalog tests (the spawner asks
#      the catalog) again with JupyterHub 6.x.
# JUnit reports, logs and screenshots go to test-artifacts/. Extra arguments go to
# both pytest runs (e.g. -x, -k NAME). Exits non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."

ARTIFACTS=test-artifacts
JH6_TESTS=(tests/test_plugin_hooks.py tests/test_hubconfig.py tests/test_demo_hub.py
           "tests/test_launch.py::test_launch_with_limits_storage_and_two_environments"
           tests/test_catalog_hub.py tests/test_binder.py tests/test_ondemand.py
           tests/test_services_launch.py tests/test_lab_extension.py
           tests/swarm)  # the Swarm spawner subclasses DockerSpawner's SwarmSpawner
# A stage that hangs is interrupted (SIGINT: pytest still writes its report and summary).
JH5_TIMEOUT=${JH5_TIMEOUT:-3600}
JH6_TIMEOUT=${JH6_TIMEOUT:-1800}

log() { printf '\n[run-tests] %s\n' "$*"; }
STAGES=()
FAILED=0
START=$SECONDS

record() {  # name, status, seconds
  STAGES+=("$(printf '%-26s %-22s %5ss' "$1" "$2" "$3")")
}

run_pytest() {  # name, venv, timeout, pytest arguments...
  local name=$1 venv=$2 limit=$3; shift 3
  local started=$SECONDS rc
  log "$name: $("$venv/bin/python" -m jupyterhub --version | sed 's/^/JupyterHub /')"
  timeout --signal=INT --kill-after=60 "$limit" \
    "$venv/bin/python" -m pytest -ra --junitxml="$ARTIFACTS/junit-$name.xml" "$@"
  rc=$?
  case $rc in
    0) record "$name" "passed" $((SECONDS - started)) ;;
    5) record "$name" "passed (no tests ran)" $((SECONDS - started)) ;;  # pytest: none collected
    124|130) record "$name" "TIMED OUT (${limit}s)" $((SECONDS - started)); FAILED=1 ;;
    *) record "$name" "FAILED (exit $rc)" $((SECONDS - started)); FAILED=1 ;;
  esac
}

# Counts over all JUnit reports, printed as one closing line.
totals() {
  python3 - "$ARTIFACTS"/junit-*.xml <<'EOF'
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        continue
    for suite in root.iter("testsuite"):
        total = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skip = int(suite.get("skipped", 0))
        passed += total - bad - skip
        failed += bad
        skipped += skip
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
EOF
}

mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS"/junit-*.xml

log "setting up the host (log: $ARTIFACTS/setup-host.log)"
started=$SECONDS
if WITH_JUPYTERHUB6=1 scripts/setup-host.sh 2>&1 | tee "$ARTIFACTS/setup-host.log"; then
  record "setup-host" "done" $((SECONDS - started))
else
  record "setup-host" "FAILED" $((SECONDS - started))
  printf '%s\n' "${STAGES[@]}"
  exit 1
fi

run_pytest jupyterhub5 .venv "$JH5_TIMEOUT" tests ui-tests "$@"
run_pytest jupyterhub6 .venv-jh6 "$JH6_TIMEOUT" "${JH6_TESTS[@]}" "$@"

if [ -f /var/log/tljh-rees-dockerd.log ]; then
  tail -n 500 /var/log/tljh-rees-dockerd.log > "$ARTIFACTS/dockerd.log"
fi

log "summary ($((SECONDS - START))s in all; reports in $ARTIFACTS/)"
printf '  %s\n' "${STAGES[@]}"
totals
exit $FAILED
