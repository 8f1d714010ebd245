#!/usr/bin/env bash
# Build the JupyterLab extension (labextension/, TypeScript) into
# tljh_rees_lab/share/labextensions/tljh-rees-lab, the prebuilt folder the spawner mounts
# into servers and the wheel ships. npm packages come from the registry at the versions of
# labextension/package-lock.json; the shared JupyterLab packages' versions from the
# jupyterlab Python package of the virtual environment (VENV, default .venv).
# Quick when nothing changed: the output records a hash of its sources.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
OUT=tljh_rees_lab/share/labextensions/tljh-rees-lab
log() { printf '[build-lab-extension] %s\n' "$*" >&2; }

stamp=$(cat labextension/package.json labextension/package-lock.json labextension/tsconfig.json \
          labextension/src/* labextension/style/* | sha256sum | cut -c1-16)
if [ -f "$OUT/.source-hash" ] && [ "$(cat "$OUT/.source-hash")" = "$stamp" ]; then
  exit 0
fi
command -v npm >/dev/null || { log "npm is needed (apt-get install npm)"; exit 1; }
core=$("$VENV/bin/python" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))') || {
  log "the jupyterlab Python package is needed in $VENV (dev-requirements.txt)"; exit 1; }
log "building the JupyterLab extension"
cd labextension
npm ci --silent --no-audit --no-fund >/dev/null
rm -rf lib "../$OUT"
node_modules/.bin/tsc
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$core" . >/dev/null
cd ..
echo "$stamp" > "$OUT/.source-hash"
log "built: $OUT"
