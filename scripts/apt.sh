# shellcheck shell=bash
# Sourced by the scripts that need Debian packages (scripts/env.sh sources it for all the
# others): `apt_install PKG...` installs those not installed yet, as root or through sudo,
# running `apt-get update` once per script; it exits naming them where there is no apt-get.
_apt_updated=0
apt_install() {
  local pkg missing=()
  for pkg in "$@"; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
      missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing ${missing[*]} and no apt-get to install them: install them first" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing ${missing[*]} with apt-get" >&2
  if [ "$_apt_updated" -eq 0 ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    _apt_updated=1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# `rustup_target TARGET...` adds rustup's standard library for each target not installed yet.
rustup_target() {
  local installed target
  installed="$(rustup target list --installed)"
  for target in "$@"; do
    grep -qx "$target" <<<"$installed" || rustup target add "$target"
  done
}
