"""unified_core/timefmt.py: the one ISO spelling of an instant every JSON answer uses, and the
kernel's boot time."""
from unified_core.timefmt import boot_time, iso


def test_iso_is_utc_with_milliseconds_and_none_stays_none():
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"
    assert iso(None) is None


def test_boot_time_is_the_kernels_btime():
    with open("/proc/stat") as f:
        btime = next(float(line.split()[1]) for line in f if line.startswith("btime "))
    assert boot_time() == btime
