"""Import of ONNX CNNs into the network IR: float models and QDQ-quantized models.

`import_onnx` reads an NCHW model (opset >= 11) into an `OnnxModel`: the float `Network` (conv
weights transposed from OIHW to HWIO, BatchNormalization folded into the conv before it, the
rows of a Gemm or MatMul after a Flatten permuted from the CHW to the IR's HWC order) and, for a
QDQ model (QuantizeLinear/DequantizeLinear pairs as onnxruntime's static quantizer writes them),
the model's own activation and weight scales. `quantize_onnx` turns it into a `QNetwork`: a
float model by calibration (`imcflow.sw.quant.quantize`), a QDQ model with its own scales
(`imcflow.sw.quant.from_scales`). docs/onnx.md lists the supported ops and attributes, the zero
point rules and how closely the golden model follows onnxruntime.

A model without weight values (weights as graph inputs with shapes, or missing external data)
imports as a topology, enough for the mapper. An unsupported op, attribute or form is a one-line
`UserError` naming the node, the op and what is supported.

One concern per module, as the op registry (`imcflow.sw.ops`) has one module per layer kind:

- `graph`: the model's graph read once: opset, input, output, constants (`Param`), the nodes the
  output needs (`Node`: name, attributes, one-line errors);
- `constants`: constant tensors (`Param`) and the initializers they are read from, their
  external data checked (inside the model's folder, whole) and their values finite;
- `shapes`: what flows between nodes (`Value`: an IR layer's output with its ONNX (C, H, W) or
  (F,) shape) and the attributes that shape a window (`window`);
- `importer`: the `Importer` the layer kinds' ``onnx`` methods build the network through, and the
  dispatch of each node to its layer kind (`imcflow.sw.ops`) or to the plumbing;
- `plumbing`: the nodes that make no layer (BatchNormalization folded into its conv, Identity,
  Dropout, Constant);
- `qdq`: QuantizeLinear/DequantizeLinear, the weight codes and the scales of a QDQ model, and
  `quantize_onnx`.
"""

from imcflow.sw.onnx_import.graph import MIN_OPSET
from imcflow.sw.onnx_import.importer import SUPPORTED_OPS, OnnxModel, import_onnx
from imcflow.sw.onnx_import.qdq import quantize_onnx

__all__ = ["OnnxModel", "import_onnx", "quantize_onnx", "SUPPORTED_OPS", "MIN_OPSET"]
