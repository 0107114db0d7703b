#!/usr/bin/python3
"""Are the wheels of a pinned requirements file (NAME==VERSION --hash=sha256:HEX) in DIR?

    have_wheels.py REQUIREMENTS DIR           exit 0 when each is there with its hash, else 1
    have_wheels.py REQUIREMENTS DIR --print   also print their paths, one a line

build-deb.sh asks before it downloads, so a build without network reuses build/wheels/."""
import hashlib
import pathlib
import re
import sys


def wanted(requirements: str) -> list[tuple[str, str, str]]:
    out = []
    for line in pathlib.Path(requirements).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)\s+--hash=sha256:([0-9a-f]{64})\s*$", line)
        if m:
            out.append((re.sub(r"[-_.]+", "_", m.group(1)).lower(), m.group(2), m.group(3)))
    return out


def main(argv: list[str]) -> int:
    found = []
    for name, version, digest in wanted(argv[1]):
        for whl in sorted(pathlib.Path(argv[2]).glob(f"{name}-{version}-*.whl")):
            if hashlib.sha256(whl.read_bytes()).hexdigest() == digest:
                found.append(whl)
                break
        else:
            return 1
    if "--print" in argv:
        print("\n".join(map(str, found)))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
