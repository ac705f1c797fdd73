# Sourced by run.sh and test.sh: makes .venv inside the checkout and installs the project into it
# with the given extras, again only when pyproject.toml changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="$1"
venv="$root/.venv"
python="${PYTHON:-}"
if [ -z "$python" ] && [ ! -x "$venv/bin/python" ]; then
  # The fastest 3.11+ here: the same version runs our code up to 1.7x faster when built with PGO and LTO
  # (distributions' builds) than without (pyenv's default). See scripts/fastest_python.py.
  python="$(python3 "$root/scripts/fastest_python.py" || true)"
fi
python="${python:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$extras-$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing oms[$extras] into $venv ..." >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -e "$root[$extras]" >&2
  rm -f "$venv"/.installed-"$extras"-*
  touch "$stamp"
fi
