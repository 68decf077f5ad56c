"""The software stack: network IR and loaders, quantization, the bit-exact golden model, the mapper
and the performance model. Pure Python and NumPy; nothing here imports Amaranth.

Public API (``from imcflow.sw import load_network, map_network``): architectures (`Arch`,
`PRESETS`, `load_arch`), the value objects the hardware blocks take (`WindowGeometry`,
`Requantizer`, `CrossbarParams`), networks (`Network`, `Shape`, `load_network`, `load_qnetwork`), data
(`load_dataset`, `calibrated`), quantization (`QNetwork`, `quantize`), the mapper (`Mapping`,
`map_network`), the performance model (`Performance`, `analyze`), the mapping report
(`summarize`, `Summary`) and the cost model (`CostModel`). The golden model is
`imcflow.sw.inference` (`run`, `trace`); accuracy and exploration are the modules `imcflow.sw.accuracy` and
`imcflow.sw.explore` (a function named like its module is imported from the module).
"""

from imcflow import lazy_api

#: public name -> the module that defines it
_API = {
    "Arch": "imcflow.sw.arch",
    "PRESETS": "imcflow.sw.arch",
    "load_arch": "imcflow.sw.arch",
    "CrossbarParams": "imcflow.sw.arch",
    "WindowGeometry": "imcflow.sw.geometry",
    "Requantizer": "imcflow.sw.arith",
    "Network": "imcflow.sw.ir",
    "Shape": "imcflow.sw.ir",
    "load_network": "imcflow.sw.networks",
    "load_qnetwork": "imcflow.sw.networks",
    "load_dataset": "imcflow.sw.datasets",
    "calibrated": "imcflow.sw.datasets",
    "QNetwork": "imcflow.sw.quant",
    "quantize": "imcflow.sw.quant",
    "Mapping": "imcflow.sw.mapper",
    "map_network": "imcflow.sw.mapper",
    "Performance": "imcflow.sw.perf",
    "analyze": "imcflow.sw.perf",
    "summarize": "imcflow.sw.report",
    "Summary": "imcflow.sw.report",
    "CostModel": "imcflow.sw.cost",
}
__all__ = sorted(_API)

__getattr__, __dir__ = lazy_api(__name__, _API)
