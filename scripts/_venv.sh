# Shared by scripts/demo and scripts/test: create .venv once and install speedrift into it.
# Usage: source scripts/_venv.sh [extra]   (extra: "dev" installs the test and lint tools too)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "speedrift needs Python 3.11 or newer")'
if [ ! -x "$root/.venv/bin/python" ]; then
  "$py" -m venv "$root/.venv"
fi
spec="$root"
if [ "${1:-}" = "dev" ]; then spec="$root[dev]"; fi
# Reinstall only when pyproject.toml changed since the last install.
stamp="$root/.venv/.installed-${1:-main}"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
  touch "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
