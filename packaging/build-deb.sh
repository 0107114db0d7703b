#!/bin/sh
# Build the unified-system Debian package (debhelper 13 + dh-python) from this tree.
#
#   packaging/build-deb.sh        (= make deb)  -> dist/unified-system_0.2.0_all.deb
#                                                  + dist/unified-system-voice_0.2.0_all.deb
#                                                  + dist/unified-system-wakeword_0.2.0_amd64.deb
#
# (three binary packages: the speech agents are unified-system-voice, which the base
# Recommends; unified-system-wakeword vendors microWakeWord's wheels (amd64 only), which the
# voice package Recommends; the last line of output is the base .deb, the others lie beside
# it).
# The version is packaging/debian/changelog's (native package: 0.2.0, the same as
# unified_ctl.__version__; the build fails when they differ). Higher versions for upgrade
# tests, built from the same tree without touching it, go to dist/upgrade/ so that
# `apt install ./dist/unified-system*.deb` always matches exactly one build:
#
#   VERSION_SUFFIX=+test1 packaging/build-deb.sh  -> dist/upgrade/unified-system_0.2.0+test1_all.deb
#   DEB_VERSION=0.2.1 packaging/build-deb.sh      -> dist/upgrade/unified-system_0.2.1_all.deb
#
# (0.2.0+test1 sorts above 0.2.0 for dpkg; only the package version changes, the Python
# code still says 0.2.0.) Other knobs: OUT_DIR=DIR (where the .deb goes), LINTIAN=0
# (skip lintian), KEEP_BUILD=1 (keep the temporary build directory), VERBOSE=1 (show
# the dpkg-buildpackage output; it is always in build-deb.log next to the .deb).
#
# How: installs missing build dependencies (scripts/dev/install_deps.sh build); copies
# the source tree (git ls-files: tracked + untracked-not-ignored files; without git: the
# tree minus dist/build/.git) to a temporary directory with packaging/debian as debian/;
# runs `dpkg-buildpackage -us -uc -b` with a clean environment and
# PATH=/usr/sbin:/usr/bin:/sbin:/bin (a pyenv/venv python3 on PATH would leak into the
# build); moves the .deb to dist/; runs lintian on it (errors fail the build, warnings
# are printed). The last line of output is the path of the .deb.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C.UTF-8

start=$(date +%s)
say() { echo "build-deb: $*"; }
die() { echo "build-deb: error: $*" >&2; exit 1; }

# --- build dependencies --------------------------------------------------------------
scripts/dev/install_deps.sh build

# --- the tree has what the package installs -------------------------------------------
for f in setup.cfg setup.py unified_core/__init__.py unified_ctl/__init__.py agents/__init__.py \
         units/unified.target units/unified-agents.slice etc/unified/unified.yaml; do
    [ -e "$f" ] || die "$f is missing; the package cannot be built without it"
done
# Written by other parts of the project; packaged when present (see debian/rules).
for f in units/unified-agent@.service units/unified-agent@.socket \
         units/unified-system-generator README.md; do
    [ -e "$f" ] || say "WARNING: $f is missing: the package will not contain it"
done

# --- version -------------------------------------------------------------------------
base=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
upstream=${base#*:}
upstream=${upstream%-*}
pyver=$(sed -n 's/^__version__ *= *["'\'']\([^"'\'']*\)["'\''].*/\1/p' unified_ctl/__init__.py)
[ "$upstream" = "$pyver" ] ||
    die "packaging/debian/changelog says $base but unified_ctl.__version__ is '$pyver': add a changelog entry (or fix __version__)"

if [ -n "${DEB_VERSION:-}" ]; then
    version=$DEB_VERSION
elif [ -n "${VERSION_SUFFIX:-}" ]; then
    version=$base$VERSION_SUFFIX
else
    version=$base
fi
dpkg --validate-version "$version" || die "'$version' is not a valid Debian version"
if [ "$version" = "$base" ]; then
    OUT_DIR=${OUT_DIR:-dist}
else
    OUT_DIR=${OUT_DIR:-dist/upgrade}
fi
mkdir -p "$OUT_DIR" dist
OUT_DIR=$(cd "$OUT_DIR" && pwd)
debname=unified-system_${version#*:}_all.deb
# The speech agents' package, built from the same source (debian/control).
voicename=unified-system-voice_${version#*:}_all.deb
# microWakeWord's vendored wheels (packaging/wakeword/requirements.txt): x86_64 only.
arch=$(dpkg --print-architecture)
wakename=""
[ "$arch" = amd64 ] && wakename=unified-system-wakeword_${version#*:}_${arch}.deb

# --- copy the tree -------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/unified-deb.XXXXXX")
cleanup() {
    if [ "${KEEP_BUILD:-0}" = 1 ]; then say "build directory kept: $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
src=$tmp/unified-system-${version#*:}
# Written here, copied next to the .deb: concurrent builds never interleave one file.
log=$tmp/build-deb.log
mkdir -p "$src"

if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
   [ "$(git -C "$ROOT" rev-parse --show-toplevel)" = "$ROOT" ]; then
    # Tracked files (as they are in the working tree, deleted ones skipped) plus new
    # files not yet committed but not ignored.
    git ls-files -z -c -o --exclude-standard |
        xargs -0 -r sh -c 'for f; do [ -e "$f" ] || [ -L "$f" ] && printf "%s\0" "$f"; done' sh |
        tar --null -T - -cf - | tar -xf - -C "$src"
else
    tar -cf - --exclude=./.git --exclude=./dist --exclude=./build --exclude=./.pybuild \
        --exclude=./.venv --exclude=./.cache --exclude=__pycache__ --exclude='*.egg-info' \
        --exclude=.pytest_cache --exclude=.hypothesis . | tar -xf - -C "$src"
fi
rm -rf "$src/debian"
cp -a packaging/debian "$src/debian"

# --- the vendored wheels (unified-system-wakeword) ------------------------------------
# Downloaded once from PyPI by version and hash into build/wheels/ (pip --require-hashes
# refuses anything else); a build without network reuses them there. Unpacked into the
# source copy's vendor/wakeword/, which debian/unified-system-wakeword.install ships.
if [ -n "$wakename" ]; then
    wheels=$ROOT/build/wheels
    mkdir -p "$wheels"
    if ! python3 packaging/wakeword/have_wheels.py packaging/wakeword/requirements.txt "$wheels" &&
       ! python3 -m pip download -q --no-deps --only-binary :all: --require-hashes \
            -r packaging/wakeword/requirements.txt -d "$wheels" >"$tmp/pip.log" 2>&1; then
        cat "$tmp/pip.log" >&2
        die "cannot get the wheels of packaging/wakeword/requirements.txt (PyPI, or build/wheels/ from an earlier build)"
    fi
    mkdir -p "$src/vendor/wakeword"
    python3 packaging/wakeword/have_wheels.py packaging/wakeword/requirements.txt "$wheels" \
        --print | while read -r w; do python3 -m zipfile -e "$w" "$src/vendor/wakeword/"; done
    [ -d "$src/vendor/wakeword/pymicro_wakeword" ] || die "the wheels were not unpacked"
    # pip's record of an installation (RECORD, INSTALLER) is not true of this copy
    rm -f "$src"/vendor/wakeword/*.dist-info/RECORD
fi
# Leftovers of an in-place dh run must not leak into this build.
rm -rf "$src/debian/.debhelper" "$src/debian/unified-system" "$src/debian/tmp" \
       "$src/debian/files" "$src/debian/debhelper-build-stamp"
rm -f "$src"/debian/*.substvars "$src"/debian/*.log

if [ "$version" != "$base" ]; then
    {
        printf 'unified-system (%s) unstable; urgency=medium\n\n' "$version"
        printf '  * Test build of %s from the working tree (packaging/build-deb.sh).\n\n' "$base"
        printf ' -- %s  %s\n\n' "$(dpkg-parsechangelog -l packaging/debian/changelog -S Maintainer)" "$(date -R)"
        cat packaging/debian/changelog
    } >"$src/debian/changelog"
fi

# --- build ---------------------------------------------------------------------------
say "building $debname (dpkg-buildpackage, log: ${OUT_DIR#"$ROOT"/}/build-deb.log)"
set +e
(
    cd "$src" &&
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="${HOME:-/root}" LC_ALL=C.UTF-8 \
        TMPDIR="$tmp" ${DEB_BUILD_OPTIONS:+DEB_BUILD_OPTIONS="$DEB_BUILD_OPTIONS"} \
        dpkg-buildpackage -us -uc -b
) >"$log" 2>&1
rc=$?
set -e
cp "$log" "$OUT_DIR/build-deb.log"
[ "${VERBOSE:-0}" = 1 ] && cat "$log"
if [ $rc -ne 0 ]; then
    tail -n 60 "$log" >&2
    die "dpkg-buildpackage failed (exit $rc); full log: ${OUT_DIR#"$ROOT"/}/build-deb.log"
fi
for d in "$debname" "$voicename" $wakename; do
    [ -f "$tmp/$d" ] || die "dpkg-buildpackage did not produce $d (see ${OUT_DIR#"$ROOT"/}/build-deb.log)"
done
grep -E '^dpkg-deb: building package' "$log" || true

# Our own files that the shipped units name (Exec*=, Documentation=file:) must be in
# the package: lintian cannot know that ExecStopPost=/usr/lib/unified-system/x exists.
dpkg-deb -c "$tmp/$debname" | awk '{ print substr($6, 2) }' >"$tmp/contents"
missing_refs=$(
    for u in "$src"/debian/unified-system/lib/systemd/system/*; do
        sed -nE -e 's@^Exec[A-Za-z]*=[-+!:@]*(/[^ ]+).*@\1@p' "$u" |
        while read -r p; do
            case $p in
                /usr/lib/unified-system/*|/usr/share/unified-system/*|/usr/bin/unified-*|/lib/systemd/*)
                    grep -qxF "$p" "$tmp/contents" || echo "$(basename "$u") -> $p" ;;
            esac
        done
    done | sort -u)
if [ -n "$missing_refs" ]; then
    echo "$missing_refs" | sed 's/^/build-deb:   /' >&2
    die "the units above run files the package does not ship (helpers: executable files in units/ go to /usr/lib/unified-system/)"
fi
# Documentation=file: links only warn (README.md is installed uncompressed for them).
for u in "$src"/debian/unified-system/lib/systemd/system/*; do
    for p in $(sed -nE 's@^Documentation=.*file:(/[^ ]+).*@\1@p' "$u"); do
        grep -qxF "$p" "$tmp/contents" || say "WARNING: $(basename "$u"): Documentation=file:$p is not in the package"
    done
done

# Same-filesystem rename: a reader never sees a half-copied .deb. The voice package first:
# a reader that finds the base .deb finds its companion beside it.
for d in $wakename "$voicename" "$debname"; do
    cp "$tmp/$d" "$OUT_DIR/.$d.tmp"
    mv -f "$OUT_DIR/.$d.tmp" "$OUT_DIR/$d"
done
if [ "$OUT_DIR" = "$ROOT/dist" ]; then
    # One release build in dist/: README's `apt install ./dist/unified-system*.deb`.
    for old in "$OUT_DIR"/unified-system_*_all.deb "$OUT_DIR"/unified-system-voice_*_all.deb \
               "$OUT_DIR"/unified-system-wakeword_*.deb; do
        [ "$old" = "$OUT_DIR/$debname" ] || [ "$old" = "$OUT_DIR/$voicename" ] ||
            [ "$old" = "$OUT_DIR/${wakename:-none}" ] || [ ! -e "$old" ] ||
            { rm -f "$old"; say "removed older $(basename "$old")"; }
    done
fi

# --- lintian -------------------------------------------------------------------------
if [ "${LINTIAN:-1}" != 0 ]; then
    set +e
    # TMPDIR: lintian leaves mldbm-* files behind in its temporary directory.
    TMPDIR=$tmp lintian --fail-on error --tag-display-limit 0 "$OUT_DIR/$debname" "$OUT_DIR/$voicename" \
        ${wakename:+"$OUT_DIR/$wakename"} >"$tmp/lintian.raw" 2>&1
    lrc=$?
    set -e
    grep -v 'running with root privileges is not recommended' "$tmp/lintian.raw" >"$tmp/lintian.out" || true
    cat "$tmp/lintian.out"
    errors=$(grep -c '^E: ' "$tmp/lintian.out" || true)
    warnings=$(grep -c '^W: ' "$tmp/lintian.out" || true)
    if [ "$lrc" -ne 0 ] || [ "$errors" -ne 0 ]; then
        rm -f "$OUT_DIR/$debname" "$OUT_DIR/$voicename" ${wakename:+"$OUT_DIR/$wakename"}
        die "lintian: $errors error(s); the .debs were removed"
    fi
    say "lintian: 0 errors, $warnings warning(s)"
fi

say "done in $(( $(date +%s) - start )) s: $(du -k "$OUT_DIR/$debname" | cut -f1) KiB, $voicename $(du -k "$OUT_DIR/$voicename" | cut -f1) KiB${wakename:+, $wakename $(du -k "$OUT_DIR/$wakename" | cut -f1) KiB}"
echo "$OUT_DIR/$debname"
