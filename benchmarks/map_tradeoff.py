"""The paper's trade-off on the zoo: activation memory and latency of line versus frame buffers, and
the throughput gained by doubling the core budget.

For each zoo network on the default architecture prints crossbars, cycles per image (the bound and
the event model's steady state), throughput, latency and activation memory with line and with
frame buffers, and the speedup of a 2x core budget. Run: ``python benchmarks/map_tradeoff.py``.
"""

from __future__ import annotations

from imcflow.sw.arch import load_arch
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network
from imcflow.sw.perf import analyze


def main() -> None:
    print(f"{'network':9} {'xbars':>5} {'bound':>6} {'cyc/img':>7} {'kimg/s':>7} | {'line lat':>8} "
          f"{'line kbit':>9} | {'frame lat':>9} {'frame kbit':>10} | {'2x xbars':>8} {'2x bound':>8} "
          f"{'2x cyc/img':>10} {'speedup':>7}")
    for name in ("digits", "resnet8", "resnet20", "resnet32"):
        net = load_network(name)
        line_map = map_network(net, load_arch("default", buffer="line"))
        frame_map = map_network(net, load_arch("default", buffer="frame"))
        double_map = map_network(net, load_arch("default", buffer="line"), core_budget="2x")
        line, frame, double = analyze(line_map), analyze(frame_map), analyze(double_map)
        print(f"{name:9} {line_map.crossbars:5d} {line_map.cycles_per_image:6d} {line.cycles_per_image:7d} "
              f"{line.throughput_ips / 1e3:7.1f} | {line.latency_cycles:8d} "
              f"{line_map.activation_memory_bits / 1e3:9.1f} | {frame.latency_cycles:9d} "
              f"{frame_map.activation_memory_bits / 1e3:10.1f} | {double_map.crossbars:8d} "
              f"{double_map.cycles_per_image:8d} {double.cycles_per_image:10d} "
              f"{line.cycles_per_image / double.cycles_per_image:7.2f}", flush=True)


if __name__ == "__main__":
    main()
