"""Simulation speed and Verilator build time of the two crossbar flavours (docs/crossbar.md).

For each network and each target (``sim``: the behavioral crossbar, integer arithmetic once per
MVM; ``fpga``: the multiplier-free MAC array), the script generates the accelerator
(`imcflow.gen.project.generate` with ``target``), compiles its Verilog with Verilator around a
bare C++ loop (no cocotb, no ``--public-flat-rw``, no tracing, ``OPT_FAST=-O2``, ``make -j 2``,
from an empty build directory: a cold build), and runs the loop: input images back to back
(random pixels, ``s_axis_tvalid`` always high, ``tlast`` on each image's last pixel) and
``m_axis_tready`` always high. It prints per flavour the wall-clock time of the Verilator build
(``verilate`` = Verilog to C++, ``compile`` = C++ to executable) and its CPU time, the simulated
cycles per CPU second of the loop (``cycles/cpu s``, the figure that a busy machine distorts
least) and per wall second, and the images completed.

Run: ``python benchmarks/crossbar_flavours.py [--networks digits resnet8] [--cycles N]
[--targets sim fpga] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imcflow import toolchain
from imcflow.gen.project import generate

#: the C++ loop: argv[1] cycles to simulate, argv[2] beats per image, argv[3] input data words
MAIN = r"""
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include "verilated.h"
#include "V{top}.h"

static inline uint64_t next(uint64_t &s) {{ s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }}

int main(int argc, char **argv) {{
    long cycles = atol(argv[1]);
    long beats = atol(argv[2]);
    VerilatedContext context;
    V{top} top{{&context}};
    uint64_t seed = 1;
    top.clk = 0; {reset_on} top.s_axis_tvalid = 0; top.m_axis_tready = 1;
    for (int c = 0; c < 4; c++) {{ top.clk = 1; top.eval(); top.clk = 0; top.eval(); }}
    {reset_off}
    long beat = 0, images_in = 0, images_out = 0, beats_out = 0;
    top.s_axis_tvalid = 1;
    {set_data}
    top.s_axis_tlast = beats == 1;
    auto start = std::chrono::steady_clock::now();
    std::clock_t cpu_start = std::clock();
    for (long c = 0; c < cycles; c++) {{
        top.clk = 0; top.eval();
        bool in = top.s_axis_tvalid && top.s_axis_tready;
        bool out = top.m_axis_tvalid && top.m_axis_tready;
        bool out_last = top.m_axis_tlast;
        top.clk = 1; top.eval();
        if (in) {{
            if (++beat == beats) {{ beat = 0; images_in++; }}
            {set_data}
            top.s_axis_tlast = beat == beats - 1;
        }}
        if (out) {{ beats_out++; images_out += out_last; }}
    }}
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double cpu = double(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    printf("{{\"cycles\": %ld, \"seconds\": %.6f, \"cpu_seconds\": %.6f, \"images_in\": %ld, "
           "\"images_out\": %ld, \"beats_out\": %ld}}\n", cycles, seconds, cpu, images_in,
           images_out, beats_out);
    top.final();
    return 0;
}}
"""


#: ``--reset inside``: the top in a wrapper that drives ``rst`` from a counter (four cycles after
#: power-up), other ports passed through or left open
WRAPPER = """module {wrapper}({ports});
  reg [2:0] count = 3'd0;
  wire rst = count != 3'd4;
  always @(posedge clk) if (rst) count <= count + 3'd1;
  {top} dut({connections});
endmodule
"""


def _wrapper(manifest: dict) -> str:
    """Verilog of a wrapper of the top that resets it from inside the model."""
    passed = ("clk", "s_axis_tdata", "s_axis_tvalid", "s_axis_tlast", "s_axis_tready",
              "m_axis_tdata", "m_axis_tvalid", "m_axis_tlast", "m_axis_tready")
    ports = []
    for port in manifest["ports"]:
        if port["name"] in passed:
            width = f"[{port['width'] - 1}:0] " if port["width"] > 1 else ""
            ports.append(f"{port['direction']} {width}{port['name']}")
    connections = [f".{p['name']}({p['name'] if p['name'] in passed + ('rst',) else ''})"
                   for p in manifest["ports"]]
    return WRAPPER.format(wrapper="wrap", ports=", ".join(ports), top=manifest["top"],
                          connections=", ".join(connections))


def _set_data(bits: int) -> str:
    """C++ statement putting random bits on ``s_axis_tdata`` (``bits`` wide)."""
    if bits <= 64:
        mask = "~0ULL" if bits == 64 else f"((1ULL << {bits}) - 1)"
        return f"top.s_axis_tdata = next(seed) & {mask};"
    words = -(-bits // 32)
    return " ".join(f"top.s_axis_tdata[{w}] = (uint32_t)next(seed);" for w in range(words))


def _cpu() -> float:
    """CPU seconds of the finished child processes (on a shared machine wall time misleads)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build(gen_dir: Path, build_dir: Path, reset_inside: bool = False) -> dict:
    """Verilate and compile the generated top with the C++ loop; returns the build times (wall
    and CPU seconds)."""
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    top, stream = manifest["top"], manifest["streams"]["input"]
    bits = stream["lanes"] * stream["lane_bits"]
    build_dir.mkdir(parents=True)
    sources = [str(gen_dir / manifest["verilog"]), str(build_dir / "main.cpp")]
    if reset_inside:
        (build_dir / "wrap.v").write_text(_wrapper(manifest))
        sources.append(str(build_dir / "wrap.v"))
        top = "wrap"
    reset = ("", "") if reset_inside else ("top.rst = 1;", "top.rst = 0;")
    (build_dir / "main.cpp").write_text(MAIN.format(top=top, set_data=_set_data(bits),
                                                    reset_on=reset[0], reset_off=reset[1]))
    env = toolchain.environ()
    verilate = ["verilator", "--cc", "--exe", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
                "-Wno-PINCONNECTEMPTY", "--top-module", top, "-Mdir", str(build_dir / "obj"),
                "-o", "sim", *sources]
    start, cpu = time.perf_counter(), _cpu()
    subprocess.run(verilate, check=True, env=env, stdout=subprocess.DEVNULL)
    t_verilate = time.perf_counter() - start
    make = ["make", "-j", "2", "-C", str(build_dir / "obj"), "-f", f"V{top}.mk", "sim",
            "OPT_FAST=-O2", "CFG_CXXFLAGS_PCH_I=-include"]
    subprocess.run(make, check=True, env=env, stdout=subprocess.DEVNULL)
    t_compile = time.perf_counter() - start - t_verilate
    return {"verilate_s": round(t_verilate, 1), "compile_s": round(t_compile, 1),
            "build_s": round(t_verilate + t_compile, 1), "build_cpu_s": round(_cpu() - cpu, 1),
            "beats_per_image": stream["beats_per_image"],
            "cycles_per_image": manifest["model"].get("cycles_per_image")}


def run(build_dir: Path, cycles: int, beats: int) -> dict:
    out = subprocess.run([str(build_dir / "obj" / "sim"), str(cycles), str(beats)], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out)
    result["cycles_per_second"] = round(result["cycles"] / result["cpu_seconds"])
    result["cycles_per_wall_second"] = round(result["cycles"] / result["seconds"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["digits", "resnet8"])
    parser.add_argument("--targets", nargs="+", default=["sim", "fpga"], choices=["sim", "fpga"])
    parser.add_argument("--cycles", type=int, default=2_000_000,
                        help="simulated cycles per run (default 2,000,000)")
    parser.add_argument("--keep", metavar="DIR", help="keep the generated and built files here")
    parser.add_argument("--reset", choices=["port", "inside"], default="port",
                        help="drive rst from the C++ loop (port, default) or from a counter in a "
                             "wrapper module (inside: Amaranth's synchronous reset then no longer "
                             "makes every register's next-state logic depend on a top input, "
                             "which Verilator re-evaluates in every eval() call)")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="crossbar_flavours-"))
    print(f"{'network':9} {'target':6} {'gen s':>6} {'verilate s':>10} {'compile s':>9} "
          f"{'build s':>8} {'build cpu s':>11} {'cycles/cpu s':>12} {'cycles/s':>10} "
          f"{'images':>7} {'cyc/img':>8}", flush=True)
    for network in args.networks:
        for target in args.targets:
            gen_dir = root / f"{network}-{target}"
            build_dir = root / f"{network}-{target}-build-{args.reset}"
            start = time.perf_counter()
            if not (gen_dir / "manifest.json").exists():   # reuse a kept generation
                generate(gen_dir, network, "default", target=target, progress=False)
            t_gen = time.perf_counter() - start
            figures = build(gen_dir, build_dir, reset_inside=args.reset == "inside")
            result = run(build_dir, args.cycles, figures["beats_per_image"])
            print(f"{network:9} {target:6} {t_gen:6.1f} {figures['verilate_s']:10.1f} "
                  f"{figures['compile_s']:9.1f} {figures['build_s']:8.1f} "
                  f"{figures['build_cpu_s']:11.1f} {result['cycles_per_second']:12,} "
                  f"{result['cycles_per_wall_second']:10,} {result['images_out']:7} "
                  f"{figures['cycles_per_image']:>8}", flush=True)
    if not args.keep:
        print(f"(built in {root}; pass --keep DIR to keep the files)", file=sys.stderr)


if __name__ == "__main__":
    main()
