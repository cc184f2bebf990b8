#!/usr/bin/env bash
# The main job, until the operator lands: train two versions of the fraud model into models/,
# serve 1.0.0 on 127.0.0.1, make the seed's sample prediction, stop the server.
# Env: PORT (default 8000, or a free port when 8000 is taken), MODELS (default models), SAMPLES.
set -euo pipefail
cd "$(dirname "$0")/.."

MLSERVING=${MLSERVING:-.venv/bin/mlserving}
[ -x "$MLSERVING" ] || MLSERVING=mlserving
MODELS=${MODELS:-models}
# 8000 unless taken (another server, another demo), then any free port.
PORT=${PORT:-$(python3 -c 'import socket
s = socket.socket()
try:
    s.bind(("127.0.0.1", 8000))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')}
SAMPLES=${SAMPLES:-10000}

train() {  # version seed: skip a version that is already in the registry
  if [ -f "$MODELS/fraud/$1/metadata.json" ]; then
    echo "demo: $MODELS/fraud/$1 exists, not retraining (mlserving train --force would)"
  else
    "$MLSERVING" train --model fraud --version "$1" --seed "$2" --samples "$SAMPLES" --out "$MODELS"
  fi
}
# Different seeds give different data and forests: the two versions answer differently (A/B tests).
train 1.0.0 42
train 2.0.0 7

log=$(mktemp -t mlserving-demo.XXXXXX.log)
MODEL_PATH="$MODELS/fraud/1.0.0" "$MLSERVING" serve --host 127.0.0.1 --port "$PORT" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$log"' EXIT

for _ in $(seq 1 300); do
  if curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then echo "demo: server exited:"; cat "$log"; exit 1; fi
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null || { echo "demo: server not ready after 60 s:"; cat "$log"; exit 1; }

echo "demo: serving fraud 1.0.0 on http://127.0.0.1:$PORT; the seed's sample prediction:"
curl -sS -X POST "http://127.0.0.1:$PORT/predict" -H 'content-type: application/json' \
  -d '{"features": [0.52, -1.21, 0.33, 1.74, -0.68, 0.05, 2.11, -0.94, 0.27, 1.38, -0.45, 0.81, -1.67, 0.12, 0.99, -0.23, 1.05, -0.71, 0.64, -1.02], "request_id": "demo-0001"}'
echo
