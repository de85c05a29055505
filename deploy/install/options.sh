# Sourced by install.sh and uninstall.sh: where shoal goes, and the checks both make.
PREFIX=/opt/shoal
BIN_DIR=/usr/local/bin
UNIT_DIR=/etc/systemd/system
STATE_DIR=/var/lib/shoal

# dir_option OPTION VALUE: sets a directory option and succeeds; fails for any other option.
dir_option() {
  case "$1" in
    --prefix) PREFIX="$2" ;;
    --bin-dir) BIN_DIR="$2" ;;
    --unit-dir) UNIT_DIR="$2" ;;
    --state-dir) STATE_DIR="$2" ;;
    *) return 1 ;;
  esac
  [ -n "$2" ] || { echo "$SCRIPT: $1 needs a directory" >&2; exit 2; }
}

# Absolute directories, and root (what is installed belongs to the system).
check_dirs_and_root() {
  for d in "$PREFIX" "$BIN_DIR" "$UNIT_DIR" "$STATE_DIR"; do
    case "$d" in /*) ;; *) echo "$SCRIPT: $d: give an absolute path" >&2; exit 2 ;; esac
  done
  [ "$(id -u)" -eq 0 ] || { echo "$SCRIPT: needs root: run it as root, or with sudo" >&2; exit 1; }
}
