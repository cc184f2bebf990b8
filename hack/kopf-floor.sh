#!/usr/bin/env bash
# The operator against the lowest kopf that pyproject.toml allows: a throwaway venv with exactly
# that kopf (cached under ~/.cache/mlserving/kopf-floor/<version>-py<X.Y>/), then the kopf layer
# is imported (its handlers registered) and its settings applied, which is where an older kopf
# fails (settings.watching.label_selectors needs 1.45).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

# The operator extra's requirements, with kopf pinned to the lowest version it allows.
reqs=$("$PYTHON" - "$REPO_ROOT/pyproject.toml" <<'PY'
import re, sys, tomllib
extra = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["operator"]
found = [m.group(1) for d in extra if (m := re.match(r"kopf\s*>=\s*([0-9][0-9.]*)", d))]
if not found:
    sys.exit("pyproject.toml: the operator extra has no kopf>=X requirement")
print(f"kopf=={found[0]}")
print("\n".join(d for d in extra if not d.startswith("kopf")))
PY
)
floor=$(head -n1 <<<"$reqs" | cut -d= -f3)
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$(printf '%s\n' "$reqs" | sha256sum | cut -c1-12)
venv="${XDG_CACHE_HOME:-$HOME/.cache}/mlserving/kopf-floor/$floor-py$pyver-$key"
if [[ ! -x "$venv/bin/python" ]]; then
  rm -rf "$venv.tmp"
  "$PYTHON" -m venv "$venv.tmp"
  mapfile -t req_list <<<"$reqs"
  "$venv.tmp/bin/pip" install -q "${req_list[@]}"
  mv "$venv.tmp" "$venv"
fi

# The sources as the mlserving namespace package, without installing them into that venv.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
mkdir -p "$src/mlserving"
# Every source root setup.py maps (the operator imports from cli/ too).
for root in $("$PYTHON" -c 'import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
roots = next(n.value for n in tree.body if isinstance(n, ast.Assign)
             and getattr(n.targets[0], "id", "") == "SOURCE_ROOTS")
print(" ".join(f"{name}={folder}" for name, folder in ast.literal_eval(roots).items()))' \
    "$REPO_ROOT/setup.py"); do
  ln -s "$REPO_ROOT/${root#*=}" "$src/mlserving/${root%%=*}"
done
PYTHONPATH="$src" "$venv/bin/python" - "$floor" <<'PY'
import sys
from importlib.metadata import version

import kopf
from mlserving.operator import handlers
from mlserving.operator.kinds import child_kinds

def release(v: str) -> tuple[int, ...]:
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


assert release(version("kopf")) == release(sys.argv[1]), (version("kopf"), sys.argv[1])
settings = kopf.OperatorSettings()
handlers.apply_kopf_settings(settings, workers=4)
for kind in child_kinds():
    assert settings.watching.label_selectors[kind.plural], kind.plural
registry = kopf.get_default_registry()
watched = {h.id for h in registry._watching.get_all_handlers()}
assert {f"watch-{k.plural}" for k in child_kinds()} <= watched, watched
print(f"kopf-floor: the operator's kopf layer imports and configures with kopf {sys.argv[1]}")
PY
