#!/bin/sh
# Install what building, testing, demoing and benchmarking unified-system needs on Debian
# bookworm: everything listed in scripts/dev/host-tools (the one list; see its header).
#
#   scripts/dev/install_deps.sh                  # every group (make deps, CI)
#   scripts/dev/install_deps.sh build            # only the .deb build tools (build-deb.sh)
#   scripts/dev/install_deps.sh build container  # any subset of: build runtime test container tools
#   scripts/dev/install_deps.sh --check [GROUP]  # install nothing: exit 1 with one line naming
#                                                # each missing tool and its package
#
# Idempotent and fast when everything is present: what each line provides (a command on
# PATH, an importable python3 module, a file) is checked; apt-get (and `apt-get update`,
# which a fresh debootstrap/CI machine needs) runs only when something is missing. Needs
# root when it has to install. Prints one line saying what it installed. Afterwards every
# item is checked again: a package that installed but did not provide its tool is an error.
#
# Packages are installed with --no-install-recommends and under a temporary policy-rc.d
# that forbids service starts: installing `prometheus` and `prometheus-alertmanager` (we
# only want promtool and amtool) must not leave servers running on the developer's machine;
# if this script installed them, their services are also disabled again.
set -eu

export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "$0")" && pwd)
list=$here/host-tools
all_groups="build runtime test container tools"

check_only=""
if [ "${1:-}" = "--check" ]; then
    check_only=1
    shift
fi
groups=${*:-$all_groups}
for g in $groups; do
    case " $all_groups " in
        *" $g "*) ;;
        *) echo "install_deps: unknown group '$g' ($all_groups)" >&2; exit 2 ;;
    esac
done

# "package provides" for the chosen groups (comments and blank lines dropped).
items=$(sed 's/#.*//' "$list" | awk -v groups=" $groups " \
    'NF >= 3 && index(groups, " " $1 " ") { print $2, $3 }')

# The items whose check fails, as "provides (package)" words; one python3 run for modules.
missing_items() {
    printf '%s\n' "$items" | while read -r pkg what; do
        case $what in
            python3:*) ;;
            /*) [ -e "$what" ] || echo "$what ($pkg)" ;;
            *) command -v "$what" >/dev/null 2>&1 || echo "$what ($pkg)" ;;
        esac
    done
    mods=$(printf '%s\n' "$items" | awk '$2 ~ /^python3:/ { print $1 "=" substr($2, 9) }')
    [ -n "$mods" ] || return 0
    if command -v python3 >/dev/null 2>&1; then
        # shellcheck disable=SC2086  # one argument per package=module
        # find_spec of a dotted name imports its parent: a missing parent (ruamel of
        # ruamel.yaml) raises instead of answering None
        python3 -c 'import importlib.util, sys
for arg in sys.argv[1:]:
    pkg, mod = arg.rsplit("=", 1)
    try:
        found = importlib.util.find_spec(mod) is not None
    except ImportError:
        found = False
    if not found:
        print(f"python3:{mod} ({pkg})")' $mods
    else
        for m in $mods; do echo "python3:${m##*=} (${m%=*})"; done
    fi
}

# "what (pkg)" lines -> "what (pkg), what (pkg)" / the distinct packages.
joined() { printf '%s\n' "$1" | paste -sd, - | sed 's/,/, /g'; }
packages_of() { printf '%s\n' "$1" | sed -n 's/.*(\(.*\))$/\1/p' | sort -u | paste -sd' ' -; }

missing=$(missing_items)
if [ -z "$missing" ]; then
    n=$(printf '%s\n' "$items" | wc -l)
    echo "install_deps: all $n host tools present ($groups)"
    exit 0
fi

if [ -n "$check_only" ]; then
    echo "install_deps: missing host tools: $(joined "$missing") -- install them with: sudo $0" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_deps: missing host tools: $(joined "$missing") -- run as root (or: sudo $0 $*)" >&2
    exit 1
fi

install=$(packages_of "$missing")
# pypi:NAME==VERSION (host-tools' header): pip, after the Debian packages (python3-pip among them)
pypi=$(printf '%s\n' $install | sed -n 's/^pypi://p' | paste -sd' ' -)
install=$(printf '%s\n' $install | grep -v '^pypi:' | paste -sd' ' -)

# Other engineers/CI jobs may run apt at the same time: wait for the locks.
apt_update() {
    for i in 1 2 3 4 5 6; do
        apt-get update -qq -o DPkg::Lock::Timeout=300 && return 0
        sleep 10
    done
    return 1
}
apt_update

# Forbid service starts while installing (see header); keep an existing policy-rc.d.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    own_policy=1
    trap 'rm -f "$policy"' EXIT INT TERM
    printf '#!/bin/sh\n# temporary, from unified-system scripts/dev/install_deps.sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
fi

log=$(mktemp)
# shellcheck disable=SC2086  # one word per package
if [ -n "$install" ] && ! apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $install >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"
    echo "install_deps: apt-get install failed for: $install" >&2
    exit 1
fi
rm -f "$log"
if [ -n "$pypi" ]; then
    log=$(mktemp)
    # shellcheck disable=SC2086  # one word per package
    if ! python3 -m pip install -q --break-system-packages --no-deps $pypi >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"
        echo "install_deps: pip install failed for: $pypi" >&2
        exit 1
    fi
    rm -f "$log"
fi

# We want promtool and amtool, not servers enabled at the next boot.
for p in $install; do
    case $p in
        prometheus|prometheus-alertmanager)
            systemctl disable --quiet "$p.service" >/dev/null 2>&1 || true ;;
    esac
done

if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT INT TERM
fi

still=$(missing_items)
if [ -n "$still" ]; then
    echo "install_deps: installed $install but still missing: $(joined "$still")" >&2
    exit 1
fi
echo "install_deps: installed: $install${pypi:+ $pypi (pip)}"
