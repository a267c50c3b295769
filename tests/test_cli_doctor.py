import subprocess
import sys


def test_doctor_names_missing_counters_and_the_estimate_in_use():
    result = subprocess.run(
        [sys.executable, "-m", "perwatt", "doctor"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for source in ("nvml", "rapl", "amdsmi", "jetson", "estimate"):
        assert source in out
    assert "CPU" in out and "logical cores" in out
    # This VM has no hardware counter: doctor must say the estimate is what will be used.
    if "no /sys/class/powercap" in out and "libnvidia-ml not found" in out:
        assert "in use by perwatt run: estimated:cputime" in out
