#!/bin/sh
# Install what building, testing and demoing unified-system needs on Debian bookworm.
#
#   scripts/dev/install_deps.sh            # everything (make deps / test / demo, CI)
#   scripts/dev/install_deps.sh build      # only the .deb build dependencies (packaging/build-deb.sh)
#   scripts/dev/install_deps.sh build runtime container tools   # any subset of the groups
#
# Idempotent and fast when everything is present: one dpkg-query call decides; apt-get
# (and `apt-get update`, which a fresh debootstrap/CI machine needs) runs only when
# something is missing. Needs root when it has to install. Prints one line saying what it
# installed.
#
# Packages are installed with --no-install-recommends and under a temporary policy-rc.d
# that forbids service starts: installing `prometheus` (we only want promtool) must not
# leave a Prometheus server running on the developer's machine; if this script installed
# it, its service is also disabled again.
set -eu

export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

# dh-sequence-installsysusers is a virtual package (provided by debhelper >= 13.1).
GROUP_build="debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools dh-sequence-installsysusers lintian fakeroot dpkg-dev"
GROUP_runtime="python3-click python3-yaml python3-rich python3-psutil python3-prometheus-client python3-sdnotify python3-pytest python3-hypothesis"
GROUP_container="debootstrap systemd-container iproute2 curl"
# Optional: installed when the archive has them (bookworm main does), skipped otherwise.
GROUP_tools="prometheus wrk"

groups=${*:-"build runtime container tools"}
want=""
optional=""
for g in $groups; do
    case $g in
        build) want="$want $GROUP_build" ;;
        runtime) want="$want $GROUP_runtime" ;;
        container) want="$want $GROUP_container" ;;
        tools) optional="$optional $GROUP_tools" ;;
        *) echo "install_deps: unknown group '$g' (build runtime container tools)" >&2; exit 2 ;;
    esac
done

# Names (and virtual names) that are installed: "ii" packages plus what they Provide.
present=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Provides}\n' 2>/dev/null |
    awk '$1 == "ii" { print $2; for (i = 3; i <= NF; i++) { n = $i; sub(/,$/, "", n);
         if (n ~ /^[a-z0-9][a-z0-9.+-]+$/) print n } }' | sort -u)

is_present() { printf '%s\n' "$present" | grep -qx -- "$1"; }

missing=""
for p in $want $optional; do
    is_present "$p" || missing="$missing $p"
done

if [ -z "$missing" ]; then
    echo "install_deps: nothing to install; all $(echo $want $optional | wc -w) packages present ($groups)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install_deps: missing:$missing -- run as root (or: sudo $0 $*)" >&2
    exit 1
fi

# Other engineers/CI jobs may run apt at the same time: wait for the locks.
apt_update() {
    for i in 1 2 3 4 5 6; do
        apt-get update -qq -o DPkg::Lock::Timeout=300 && return 0
        sleep 10
    done
    return 1
}
apt_update

# Optional packages the archive does not know are skipped, not fatal.
install=""
skipped=""
for p in $missing; do
    case " $optional " in
        *" $p "*)
            cand=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
            if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
                skipped="$skipped $p"
                continue
            fi ;;
    esac
    install="$install $p"
done

# Forbid service starts while installing (see header); keep an existing policy-rc.d.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    own_policy=1
    trap 'rm -f "$policy"' EXIT INT TERM
    printf '#!/bin/sh\n# temporary, from unified-system scripts/dev/install_deps.sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
fi

if [ -n "$install" ]; then
    # Virtual packages (dh-sequence-installsysusers) resolve to their provider.
    log=$(mktemp)
    if ! apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $install >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"
        echo "install_deps: apt-get install failed for:$install" >&2
        exit 1
    fi
    rm -f "$log"
fi

case " $install " in
    *" prometheus "*)
        # We want promtool, not a server enabled at the next boot.
        systemctl disable --quiet prometheus.service >/dev/null 2>&1 || true ;;
esac

if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT INT TERM
fi

echo "install_deps: installed:${install:- nothing}${skipped:+ (not in the archive, skipped:$skipped)}"
