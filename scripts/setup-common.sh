# Shared by scripts/quickstart, scripts/test and scripts/setup-study: installs what curvnet needs, quietly and
# only when something is missing. Source it; it defines functions only.

CURVNET_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages for building and running curvnet (docs/design.md §6).
CURVNET_BUILD_PACKAGES="cmake ninja-build g++ pkg-config libopenblas-openmp-dev liblapacke-dev libtomlplusplus-dev
  libcli11-dev nlohmann-json3-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev dataset-fashion-mnist
  python3-sklearn"
# Extra packages the tests use: the PyTorch oracle, numpy, pandas (the README's recipe), the virtualenv,
# a browser.
CURVNET_TEST_PACKAGES="python3-torch python3-numpy python3-pandas python3-venv python3-pip chromium"
# The Python module (pip install ., docs/python.md): Python's headers; matplotlib for its examples.
CURVNET_TEST_PACKAGES="$CURVNET_TEST_PACKAGES python3-dev python3-matplotlib"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The test virtualenv: Debian's python3 with its site packages (torch) plus PyPI tools.
setup_venv() {
  local venv="$CURVNET_ROOT/.venv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
  if ! "$venv/bin/python" -c "import safetensors, tensorboard, pytest" 2>/dev/null; then
    echo "installing Python test tools into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check safetensors tensorboard pytest
  fi
}

gpu_visible() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q "^GPU"
}

# The curvature study (scripts/setup-study): the packages holding the data suite
# (docs/datasets.md), the analysis libraries, and Slurm with munge for the scheduler test.
CURVNET_STUDY_PACKAGES="weka r-cran-mlbench r-cran-palmerpenguins python3-vega-datasets python3-statsmodels
  python3-matplotlib python3-numba python3-tqdm python3-scipy python3-sklearn python3-pandas slurm-wlm munge"

# The Python module in .venv (docs/python.md): pip install . when the tree changed since the
# last install (a stamp of the commit and the uncommitted changes), quietly.
install_python_module() {
  local venv="$CURVNET_ROOT/.venv" stamp
  stamp="$(cd "$CURVNET_ROOT" && { git rev-parse HEAD; git status --porcelain; git diff HEAD; } 2>/dev/null | sha256sum)"
  if [ -f "$venv/.curvnet-module-stamp" ] && [ "$(cat "$venv/.curvnet-module-stamp")" = "$stamp" ] &&
    "$venv/bin/python" -c "import curvnet" 2>/dev/null; then
    return 0
  fi
  echo "installing the Python module into $venv (pip install .)"
  "$venv/bin/pip" install -q --disable-pip-version-check "$CURVNET_ROOT"
  echo "$stamp" >"$venv/.curvnet-module-stamp"
}
