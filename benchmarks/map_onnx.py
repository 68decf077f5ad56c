"""Mapping time of the torchvision ResNet-18 and ResNet-50 ImageNet topologies read from ONNX.

Writes each topology (no weights) to a temporary ``.onnx`` file, then times the import
(`imcflow.sw.onnx_import.import_onnx`, protobuf parse included) plus `map_network` (target:
under 2 s together), and the whole ``imcflow map`` summary (both buffer strategies through the
event model). Prints crossbars, cycles per image, throughput, latency and the line versus frame
activation memory and latency. Run: ``python benchmarks/map_onnx.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from imcflow.sw.arch import load_arch
from imcflow.sw.mapper import map_network
from imcflow.sw.onnx_import import import_onnx
from imcflow.sw.report import summarize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from onnx_models import resnet, write  # noqa: E402  (the onnx.helper ResNet builders)


def main() -> None:
    arch = load_arch()
    print(f"{'network':9} {'load+map s':>10} {'summary s':>9} {'xbars':>6} {'cyc/img':>8} {'images/s':>9} "
          f"{'latency us':>10} {'line Mbit':>9} {'line lat':>9} {'frame Mbit':>10} {'frame lat':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for depth in (18, 50):
            path = write(resnet(depth), Path(tmp) / f"resnet{depth}.onnx")
            start = time.perf_counter()
            net = import_onnx(path).network
            mapping = map_network(net, arch)
            t_map = time.perf_counter() - start
            start = time.perf_counter()
            s = summarize(net, mapping)
            t_summary = time.perf_counter() - start
            line, frame = s.buffer_tradeoff["line"], s.buffer_tradeoff["frame"]
            p = s.performance
            print(f"{net.name:9} {t_map:10.3f} {t_summary:9.2f} {mapping.crossbars:6d} "
                  f"{p.cycles_per_image:8d} {p.throughput_ips:9.0f} {p.latency_us:10.1f} "
                  f"{line.activation_memory_bits / 1e6:9.2f} {line.latency_cycles:9d} "
                  f"{frame.activation_memory_bits / 1e6:10.2f} {frame.latency_cycles:9d}", flush=True)


if __name__ == "__main__":
    main()
