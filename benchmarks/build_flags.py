"""What lean Verilator builds save: each block regression's toplevel built cold as cocotb's
runner builds it by default (every signal public with ``--public-flat-rw``, tracing compiled in)
and as `imcflow.verif.runner.build` builds it now (only the top's ports public, no tracing,
random initial values), the latter also with Verilator's run-time library already compiled
(`imcflow.verif.objcache`: as every build but a machine's first finds it), plus one cocotb run
on each build.

    python benchmarks/build_flags.py [--only NAME]

Prints, per design and flavour, the CPU seconds of the build (Verilator, g++ and the link: the
children's CPU time, which other load on the machine does not inflate), the size of the
generated C++ and of the executable, and the CPU seconds of one cocotb run. Each build uses a
fresh temporary cache.
"""

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

from imcflow.hw.fifo import PipelineFifo
from imcflow.hw.im2col import WindowSource
from imcflow.sw.geometry import WindowGeometry
from imcflow.verif import runner
from imcflow.verif.bank import Bank

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_core_cocotb import layer_unit, random_case  # noqa: E402
from test_im2col_cocotb import draw  # noqa: E402

#: cocotb's runner defaults: everything public, tracing compiled in, Amaranth's initial values
COCOTB_DEFAULT = dict(flags=("--public-flat-rw",), waves=True, random_init=False)
LEAN = dict(flags=(), waves=False, random_init=True)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fifo(tmp):
    dut = PipelineFifo(8, 4)
    params = {"width": 8, "depth": 4, "latency": 1, "interval": 1}
    return dut, "fifo_w8_d4", params, ROOT / "tests/cocotb/fifo_tb.py", {"seed": 1, "beats": 5000}


def im2col(tmp):
    seeds = range(100, 110)
    geometries = [draw(seed) for seed in seeds]
    bank = Bank({f"g{n}": WindowSource(WindowGeometry(*g[:3], *g[4:7]), g[3], strategy=g[7],
                                       signed=g[8], pad_value=g[9])
                 for n, g in enumerate(geometries)})
    keys = ("h", "w", "c", "bits", "kernel", "stride", "padding", "strategy", "signed", "pad_value")
    params = [{"port": name, **dict(zip(keys, g)), "latency": source.latency, "seed": seed}
              for (name, source), g, seed in zip(bank.units.items(), geometries, seeds)]
    return bank, "im2col_bank", {"geometries": params}, ROOT / "tests/cocotb/im2col_tb.py", \
        {"images": 3}


def layers(tmp):
    data, dut, units = {}, [], []
    for k, seed in enumerate(range(200, 205)):
        layer, unit = layer_unit(k, seed, data=data, **random_case(seed))
        unit["prefix"] = f"u{k}_"
        dut.append(layer)
        units.append(unit)
    np.savez(tmp / "data.npz", **data)
    return Bank({f"u{k}": d for k, d in enumerate(dut)}), "layers_bank", \
        {"units": units, "image": 7}, ROOT / "tests/cocotb/core_tb.py", {"data": str(tmp / "data.npz")}


DESIGNS = {"fifo": fifo, "im2col": im2col, "layers": layers}


def measure(make, flavour: dict, warm_runtime: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="imcflow-flags-") as tmp:
        os.environ["IMCFLOW_CACHE"] = tmp
        dut, name, params, tb, run_params = make(Path(tmp))
        if warm_runtime:   # a first build puts Verilator's run-time objects into the cache
            runner.build(dut, name=name, parameters={**params, "first": True}, **flavour)
        start = children_cpu()
        build = runner.build(dut, name=name, parameters=params, **flavour)
        built = children_cpu()
        runner.run(build, tb, parameters=run_params, test_id=f"flags-{name}")
        ran = children_cpu()
        cpp = sum(p.stat().st_size for p in build.directory.glob("Vtop*.cpp"))
        exe = (build.directory / name).stat().st_size
        return {"build_cpu_s": built - start, "run_cpu_s": ran - built, "cpp_mb": cpp / 1e6,
                "exe_mb": exe / 1e6}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(DESIGNS))
    args = parser.parse_args()
    for name, make in DESIGNS.items():
        if args.only and name != args.only:
            continue
        for flavour, options, warm in (("cocotb default", COCOTB_DEFAULT, False),
                                       ("lean", LEAN, False), ("lean, runtime cached", LEAN, True)):
            f = measure(make, options, warm)
            print(f"{name:8s} {flavour:21s} build {f['build_cpu_s']:6.1f} s CPU, C++ "
                  f"{f['cpp_mb']:6.2f} MB, executable {f['exe_mb']:5.2f} MB, run "
                  f"{f['run_cpu_s']:6.1f} s CPU", flush=True)


if __name__ == "__main__":
    main()
