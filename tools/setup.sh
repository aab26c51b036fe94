# shellcheck shell=bash
# Shared set-up for tools/selfsup and tools/test. Source it, then call
#
#   selfsup_setup [cmake --build arguments, e.g. --target selfsup]
#
# which does three things, each only when needed:
#   1. Debian packages: finds the missing ones with dpkg-query. As root it installs them
#      (apt-get update + apt-get install, non-interactive); otherwise it prints the exact
#      `sudo apt-get install -y ...` line and exits 1.
#   2. Configure: runs cmake when the build folder has no CMakeCache.txt, or when
#      SELFSUP_CMAKE_FLAGS differs from the flags of the last configure.
#   3. Build: `cmake --build`, which is incremental, so changed sources are rebuilt and an
#      up-to-date tree costs about a second. Its output goes to $SELFSUP_BUILD_LOG, not to the
#      terminal, so the CLI's output stays clean; a one-line note goes to stderr when the build
#      has real work to do, and the log's tail when it fails.
#
# Environment:
#   SELFSUP_BUILD_DIR    build folder (default build/ in the repo; a relative path is taken from
#                        the repo root)
#   SELFSUP_CMAKE_FLAGS  extra flags for cmake's configure step, e.g. "-DSELFSUP_CUDA=OFF".
#                        cmake keeps cached values, so dropping a flag later does not undo it:
#                        delete the build folder for that.
#   SELFSUP_JOBS         parallel build jobs (default: nproc)
# (For testing the non-root path as root: SELFSUP_SETUP_AS_USER=1 makes the package step behave
# as if not root.)

SELFSUP_DEBIAN_PACKAGES=(
  build-essential cmake pkg-config libeigen3-dev libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev libstb-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev libomp-dev
  dataset-fashion-mnist clang-format
)

SELFSUP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELFSUP_BUILD_DIR="${SELFSUP_BUILD_DIR:-build}"
[[ $SELFSUP_BUILD_DIR == /* ]] || SELFSUP_BUILD_DIR="$SELFSUP_ROOT/$SELFSUP_BUILD_DIR"
SELFSUP_BUILD_LOG="$SELFSUP_BUILD_DIR/build.log"

# ---- 1. Debian packages ----

# Prints, one per line, the names among "$@" that dpkg does not list as installed.
selfsup_missing_packages() {
  local installed pkg
  installed="$(dpkg-query -W -f='${Package}\t${Status}\n' "$@" 2>/dev/null || true)"
  for pkg in "$@"; do
    grep -qxF "$pkg	install ok installed" <<<"$installed" || echo "$pkg"
  done
}

selfsup_require_packages() {
  if ! command -v dpkg-query >/dev/null; then
    echo "selfsup: no dpkg-query (not Debian?); make sure these are installed: $*" >&2
    return 0
  fi
  local missing
  mapfile -t missing < <(selfsup_missing_packages "$@")
  ((${#missing[@]} == 0)) && return 0

  if [[ $(id -u) -ne 0 || -n ${SELFSUP_SETUP_AS_USER:-} ]]; then
    echo "selfsup: missing Debian packages: ${missing[*]}" >&2
    echo "selfsup: install them with (then run this command again):" >&2
    echo "sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "selfsup: installing missing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # apt's output goes to stderr so that stdout carries only the CLI's output.
  if ! { apt-get update -q && apt-get install -y -q "${missing[@]}"; } </dev/null >&2; then
    echo "selfsup: error: apt-get install ${missing[*]} failed" >&2
    exit 1
  fi
}

# ---- 2. + 3. configure and build ----

selfsup_configure() {
  local stamp="$SELFSUP_BUILD_DIR/.selfsup-cmake-flags"
  local flags="${SELFSUP_CMAKE_FLAGS:-}"
  if [[ -f $SELFSUP_BUILD_DIR/CMakeCache.txt && "$(cat "$stamp" 2>/dev/null)" == "$flags" ]]; then
    return 0
  fi
  local -a flag_words
  read -r -a flag_words <<<"$flags"
  cmake -S "$SELFSUP_ROOT" -B "$SELFSUP_BUILD_DIR" "${flag_words[@]}" >>"$SELFSUP_BUILD_LOG" 2>&1 &&
    printf '%s' "$flags" >"$stamp"
}

selfsup_compile() {
  cmake --build "$SELFSUP_BUILD_DIR" -j "${SELFSUP_JOBS:-$(nproc)}" "$@" >>"$SELFSUP_BUILD_LOG" 2>&1
}

selfsup_show_failure() {
  echo "selfsup: error: the build failed; log: $SELFSUP_BUILD_LOG" >&2
  if [[ ${CI:-} == true ]]; then
    cat "$SELFSUP_BUILD_LOG" >&2
  else
    echo "---- last 40 lines ----" >&2
    tail -n 40 "$SELFSUP_BUILD_LOG" >&2
  fi
}

selfsup_setup() {
  selfsup_require_packages "${SELFSUP_DEBIAN_PACKAGES[@]}"
  mkdir -p "$SELFSUP_BUILD_DIR"
  : >"$SELFSUP_BUILD_LOG"

  # The build runs in the foreground (so Ctrl-C stops it); a helper prints the note only if the
  # build is still going after a second, i.e. when there is real work to do. (sleep must not hold
  # our stdout/stderr open, or a caller reading them would wait for it.)
  (sleep 1 >/dev/null 2>&1 && echo "building selfsup... (log: $SELFSUP_BUILD_LOG)" >&2) &
  local notifier=$!
  local ok=1
  selfsup_configure && selfsup_compile "$@" || ok=0
  kill "$notifier" 2>/dev/null || true
  wait "$notifier" 2>/dev/null || true

  if ((!ok)); then
    selfsup_show_failure
    exit 1
  fi
}
