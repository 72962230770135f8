#!/usr/bin/env bash
# pack_deps.sh [OUTDIR]  (default: <repo>/.deps, git-ignored)
#
# Copy disco's third-party dependencies from this machine's Debian packages into one
# relocatable folder that travels with the checkout to a GPU machine without apt or network:
#   Eigen 3   /usr/include/eigen3            + CMake config (share/eigen3/cmake)
#   stb       /usr/include/stb               + libstb.so* + a relocatable lib/pkgconfig/stb.pc
#   Catch2 v2 /usr/include/catch2            + CMake config (lib/cmake/Catch2)
#   CLI11     /usr/include/CLI               + CMake config (share/cmake/CLI11) when present
#   nlohmann_json /usr/include/nlohmann      + CMake config (share/cmake/nlohmann_json)
# plus bin/pkg-config, a minimal pkg-config stand-in that knows the packed .pc files (used by
# tools/gpu_check.sh only when the GPU machine has no pkg-config), and src/stb_impl.c to
# rebuild libstb.so there if the copied one does not load.
# Package file lists come from `dpkg -L` when dpkg is available; the paths above otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/.deps}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
MULTIARCH="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"

log() { printf 'pack_deps: %s\n' "$*"; }
die() { printf 'pack_deps: ERROR: %s\n' "$*" >&2; exit 1; }

# dpkg_path PKG PATTERN DEFAULT: first file of package PKG matching PATTERN, else DEFAULT.
dpkg_path() {
  local hit=""
  if command -v dpkg >/dev/null 2>&1; then
    hit="$(dpkg -L "$1" 2>/dev/null | grep -E "$2" | head -n1 || true)"
  fi
  printf '%s' "${hit:-$3}"
}

copy_dir() {  # copy_dir SRC DST_PARENT
  [ -d "$1" ] || die "missing $1 (install the -dev package or adjust the path)"
  mkdir -p "$2"
  cp -a "$1" "$2/"
}

rm -rf "${OUT:?}/include" "${OUT:?}/lib" "${OUT:?}/share" "${OUT:?}/bin" "${OUT:?}/src"
mkdir -p "$OUT/include" "$OUT/lib/pkgconfig" "$OUT/lib/cmake" "$OUT/share/cmake" "$OUT/bin" "$OUT/src"

# ---- Eigen -----------------------------------------------------------------------------------
EIGEN_INC="$(dpkg_path libeigen3-dev '/include/eigen3$' /usr/include/eigen3)"
EIGEN_CMAKE="$(dpkg_path libeigen3-dev '/share/eigen3/cmake$' /usr/share/eigen3/cmake)"
copy_dir "$EIGEN_INC" "$OUT/include"
copy_dir "$EIGEN_CMAKE" "$OUT/share/eigen3"
if [ -f /usr/share/pkgconfig/eigen3.pc ]; then
  sed -e "s|^prefix=.*|prefix=\${pcfiledir}/../..|" /usr/share/pkgconfig/eigen3.pc > "$OUT/lib/pkgconfig/eigen3.pc"
fi
log "Eigen: $EIGEN_INC"

# ---- stb ---------------------------------------------------------------------------------------
STB_INC="$(dpkg_path libstb-dev '/include/stb$' /usr/include/stb)"
copy_dir "$STB_INC" "$OUT/include"
STB_LIBDIR="/usr/lib/$MULTIARCH"
shopt -s nullglob
stb_libs=("$STB_LIBDIR"/libstb.so*)
shopt -u nullglob
[ "${#stb_libs[@]}" -gt 0 ] || die "no libstb.so* in $STB_LIBDIR"
cp -a "${stb_libs[@]}" "$OUT/lib/"
STB_VERSION="$(sed -n 's/^Version: *//p' "$STB_LIBDIR/pkgconfig/stb.pc" 2>/dev/null || true)"
cat > "$OUT/lib/pkgconfig/stb.pc" <<EOF
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include/stb

Name: stb
Description: single-file image and audio processing libraries for C/C++ (packed by tools/pack_deps.sh)
Version: ${STB_VERSION:-0.0}
Libs: -L\${libdir} -lstb
Cflags: -I\${includedir} -I\${prefix}/include
EOF
# implementation file to rebuild libstb.so from the headers if the copied binary cannot load
cat > "$OUT/src/stb_impl.c" <<'EOF'
/* Rebuild of the parts of Debian's libstb that disco uses (tools/gpu_check.sh fallback). */
#define STB_IMAGE_IMPLEMENTATION
#include "stb_image.h"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "stb_image_write.h"
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include "stb_image_resize.h"
EOF
log "stb: $STB_INC, ${stb_libs[*]}"

# ---- Catch2 ------------------------------------------------------------------------------------
CATCH_INC="$(dpkg_path catch2 '/include/catch2$' /usr/include/catch2)"
CATCH_CMAKE="$(dpkg_path catch2 '/lib/cmake/Catch2$' /usr/lib/cmake/Catch2)"
copy_dir "$CATCH_INC" "$OUT/include"
copy_dir "$CATCH_CMAKE" "$OUT/lib/cmake"
# the exported Catch2WithMain target must find its archive, or find_package(Catch2) fails
for a in /usr/lib/libCatch2WithMain.a "/usr/lib/$MULTIARCH/libCatch2WithMain.a"; do
  [ -f "$a" ] && cp -a "$a" "$OUT/lib/"
done
# Debian's config pins the prefix when loaded from /usr/lib/cmake/Catch2; the copy is not
# there, so its relative prefix computation applies.
log "Catch2: $CATCH_INC"

# ---- CLI11 -------------------------------------------------------------------------------------
CLI_INC="$(dpkg_path libcli11-dev '/include/CLI$' /usr/include/CLI)"
copy_dir "$CLI_INC" "$OUT/include"
CLI_CMAKE="$(dpkg_path libcli11-dev '/cmake/CLI11$' /usr/share/cmake/CLI11)"
if [ -d "$CLI_CMAKE" ]; then copy_dir "$CLI_CMAKE" "$OUT/share/cmake"; fi
if [ -f /usr/share/pkgconfig/CLI11.pc ]; then
  sed -e "s|^prefix=.*|prefix=\${pcfiledir}/../..|" /usr/share/pkgconfig/CLI11.pc > "$OUT/lib/pkgconfig/CLI11.pc"
fi
log "CLI11: $CLI_INC"

# ---- nlohmann_json -----------------------------------------------------------------------------
JSON_INC="$(dpkg_path nlohmann-json3-dev '/include/nlohmann$' /usr/include/nlohmann)"
JSON_CMAKE="$(dpkg_path nlohmann-json3-dev '/cmake/nlohmann_json$' /usr/share/cmake/nlohmann_json)"
copy_dir "$JSON_INC" "$OUT/include"
copy_dir "$JSON_CMAKE" "$OUT/share/cmake"
log "nlohmann_json: $JSON_INC"

# ---- pkg-config stand-in -------------------------------------------------------------------------
cat > "$OUT/bin/pkg-config" <<'EOF'
#!/bin/sh
# Minimal pkg-config for the .pc files packed by tools/pack_deps.sh (no Requires, no
# conflicts): enough for CMake's FindPkgConfig / pkg_check_modules. Set only when the
# machine has no real pkg-config.
DEPS="$(cd "$(dirname "$0")/.." && pwd)"
PCDIR="$DEPS/lib/pkgconfig"
mode=""; var=""; mods=""
for a in "$@"; do
  case "$a" in
    --version) echo "0.29.2"; exit 0 ;;
    --print-errors|--short-errors|--static|--silence-errors) ;;
    --exists|--modversion|--libs|--libs-only-l|--libs-only-L|--libs-only-other|--cflags|--cflags-only-I|--cflags-only-other) mode="$a" ;;
    --variable=*) mode="--variable"; var="${a#--variable=}" ;;
    -*) ;;
    *) case "$a" in [\<\>=]*|[0-9]*) ;; *) mods="$mods $a" ;; esac ;;
  esac
done
field() {  # field PCFILE KEY -> value with ${var} expanded (prefix from pcfiledir)
  pcfiledir="$(cd "$(dirname "$1")" && pwd)"
  prefix="$(cd "$pcfiledir/../.." && pwd)"
  val="$(sed -n "s/^$2[:=] *//p" "$1" | head -n1)"
  libdir="$prefix/lib"; includedir="$(sed -n 's/^includedir=//p' "$1" | head -n1)"
  includedir="$(printf '%s' "$includedir" | sed -e "s|\${prefix}|$prefix|g")"
  printf '%s' "$val" | sed -e "s|\${pcfiledir}/../..|$prefix|g" -e "s|\${prefix}|$prefix|g" \
    -e "s|\${libdir}|$libdir|g" -e "s|\${includedir}|$includedir|g" -e "s|\${pcfiledir}|$pcfiledir|g"
}
out=""
for m in $mods; do
  pc="$PCDIR/$m.pc"
  if [ ! -f "$pc" ]; then
    echo "Package $m was not found in the pkg-config search path ($PCDIR)" >&2
    exit 1
  fi
  libs="$(field "$pc" Libs)"; cflags="$(field "$pc" Cflags)"
  case "$mode" in
    --exists) ;;
    --modversion) out="$out $(field "$pc" Version)" ;;
    --variable) out="$out $(field "$pc" "$var")" ;;
    --libs) out="$out $libs" ;;
    --libs-only-l) for t in $libs; do case "$t" in -l*) out="$out $t" ;; esac; done ;;
    --libs-only-L) for t in $libs; do case "$t" in -L*) out="$out $t" ;; esac; done ;;
    --libs-only-other) for t in $libs; do case "$t" in -l*|-L*) ;; *) out="$out $t" ;; esac; done ;;
    --cflags) out="$out $cflags" ;;
    --cflags-only-I) for t in $cflags; do case "$t" in -I*) out="$out $t" ;; esac; done ;;
    --cflags-only-other) for t in $cflags; do case "$t" in -I*) ;; *) out="$out $t" ;; esac; done ;;
  esac
done
[ -n "$out" ] && echo "${out# }"
exit 0
EOF
chmod +x "$OUT/bin/pkg-config"

cat > "$OUT/README.txt" <<EOF
Packed by tools/pack_deps.sh on $(date -u +%Y-%m-%dT%H:%MZ) from $(hostname).
Use with: tools/gpu_check.sh --deps $OUT   (or DISCO_DEPS_DIR=$OUT)
CMake: -DCMAKE_PREFIX_PATH=$OUT  PKG_CONFIG_PATH=$OUT/lib/pkgconfig  CPATH=$OUT/include
EOF
du -sh "$OUT" | sed 's/^/pack_deps: total /'
log "done: $OUT"
