"""ONNX import, checked against onnxruntime: float models agree to float precision; QDQ models from
onnxruntime's static quantizer agree to one code per element layer by layer (with a lossless ADC);
topology-only ResNets map; every unsupported op or attribute is a one-line error."""

from __future__ import annotations

import contextlib
import io
import json
from functools import partial

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from imcflow.cli import main
from imcflow.errors import UserError
from imcflow.sw import zoo
from imcflow.sw.arch import Arch
from imcflow.sw.inference import float_run, layer_forward, run
from imcflow.sw.mapper import map_network
from imcflow.sw.networks import load_network, load_qnetwork
from imcflow.sw.onnx_import import SUPPORTED_OPS, import_onnx, quantize_onnx
from onnx_models import Graph, flatten_cnn, from_network, resnet, small_cnn, write

#: every bit-plane dot product fits a 16-bit ADC (|dot| <= 256 * 127 < 2**15), no gain shift:
#: the crossbar is exact and only requantization rounding differs from onnxruntime
LOSSLESS = Arch(weight_bits=8, adc_bits=16, input_encoding="bit_serial")
#: the quantizer options whose zero points the arithmetic contract can represent
QDQ_OPTIONS = dict(activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                   extra_options={"ActivationRestrictedAsymmetric": True})


def ort_run(model, images, scale=1 / 255) -> np.ndarray:
    """onnxruntime's output for 8-bit ``images`` (N, H, W, C) fed as ``images * scale`` in NCHW."""
    session = ort.InferenceSession(model if isinstance(model, str) else model.SerializeToString())
    x = (np.asarray(images) * scale).transpose(0, 3, 1, 2).astype(np.float32)
    return session.run(None, {"input": x})


def ort_quantize(src, dst, images, **options) -> str:
    """``src`` quantized by onnxruntime to a QDQ model at ``dst``, calibrated on ``images / 255``:
    per-channel symmetric int8 weights, 8-bit activations."""

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter({"input": (images[i:i + 1] / 255).transpose(0, 3, 1, 2).astype(np.float32)}
                              for i in range(len(images)))

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    **{**QDQ_OPTIONS, **options})
    return str(dst)


def images_for(net, count, rng):
    s = net.shapes[net.input.name]
    images = rng.integers(0, 256, (count, s.h, s.w, s.c))
    images[0, 0, 0, 0] = 255  # calibration sees the full pixel range: input scale 1/255
    return images


# float models -----------------------------------------------------------------------------------

FLOAT_MODELS = {
    "batchnorm": (small_cnn, ["input", "conv", "relu", "maxpool", "conv", "relu", "conv", "add", "relu",
                              "conv", "relu", "conv", "conv", "add", "relu", "global_avg_pool",
                              "flatten", "dense"]),
    "bias": (partial(small_cnn, batchnorm=False, size=9), None),
    "flatten": (flatten_cnn, ["input", "conv", "relu", "avgpool", "conv", "relu", "flatten", "dense",
                              "relu", "dense"]),
}


@pytest.mark.parametrize("case", FLOAT_MODELS)
def test_float_network_agrees_with_onnxruntime(case, tmp_path, rng):
    build, kinds = FLOAT_MODELS[case]
    path = write(build(), tmp_path / "model.onnx")
    net = load_network(str(path))
    if kinds:  # BatchNormalization folded, Identity and Dropout skipped
        assert [layer.kind for layer in net] == kinds
    x = images_for(net, 8, rng)
    (ref,) = ort_run(str(path), x)
    np.testing.assert_allclose(float_run(net, x / 255), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_flatten_rows_are_permuted_to_the_ir_order(tmp_path):
    # the dense layer after flattening a 3x3x4 map reads (y, x, c); ONNX's MatMul rows are (c, y, x)
    model = flatten_cnn()
    onnx_w = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "fc1.weight"))
    w = import_onnx(model).network["fc1"].weight
    for y, x, c in [(0, 0, 1), (1, 2, 3), (2, 1, 0)]:
        np.testing.assert_array_equal(w[(y * 3 + x) * 4 + c], onnx_w[c * 9 + y * 3 + x])


def test_digits_written_as_onnx_imports_to_the_same_network_and_accuracy(tmp_path, capsys):
    digits = zoo.network("digits")
    path = write(from_network(digits), tmp_path / "digits.onnx")
    net = import_onnx(path).network
    for layer in digits:
        if layer.op.weighted:
            np.testing.assert_allclose(net[layer.name].weight, layer.weight, rtol=1e-6, atol=1e-7)
    images = zoo.dataset("digits").test_images
    assert np.array_equal(float_run(net, images / 255).argmax(1), float_run(digits, images / 255).argmax(1))
    assert main(["accuracy", "--network", str(path), "--dataset", "digits", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    data = zoo.dataset("digits")
    assert report["float_accuracy"] == np.mean(float_run(digits, images / 255).argmax(1) == data.test_labels)
    assert report["imc_accuracy"] >= 0.95


# QDQ models -------------------------------------------------------------------------------------

QDQ_MODELS = {"small_cnn": partial(small_cnn, batchnorm=False),
              "flatten_cnn": partial(flatten_cnn, matmul=False)}


def calibration_for(src) -> np.ndarray:
    return images_for(import_onnx(src).network, 32, np.random.default_rng(0))


@pytest.fixture(scope="module", params=QDQ_MODELS)
def qdq_model(request, tmp_path_factory):
    """A test model quantized by onnxruntime: (QDQ path, calibration images)."""
    tmp = tmp_path_factory.mktemp("qdq")
    src = write(QDQ_MODELS[request.param](), tmp / "float.onnx")
    images = calibration_for(src)
    return ort_quantize(src, tmp / "qdq.onnx", images), images


def with_quantized_outputs(path):
    """The QDQ model at ``path`` with the output of every QuantizeLinear added as a graph output;
    returns the model, those nodes and the initializers by name."""
    model = onnx.load(path)
    quants = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    model.graph.output.extend(helper.make_tensor_value_info(n.output[0], TensorProto.UINT8, None)
                              for n in quants)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return model, quants, inits


def test_qdq_weights_and_biases_are_the_models_codes(qdq_model):
    path, images = qdq_model
    qnet = quantize_onnx(import_onnx(path), LOSSLESS, images)
    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    attrs = {n.name: {a.name: helper.get_attribute_value(a) for a in n.attribute} for n in model.graph.node}
    for q in qnet.crossbar_layers:
        codes, s = inits[f"{q.name}.weight_quantized"], q.in_shape
        if q.kind == "dense":  # (out, c*h*w) -> rows (y, x, c)
            codes = codes.T.reshape(s.c, s.h, s.w, q.cols).transpose(1, 2, 0, 3)
        codes = codes.transpose(2, 3, 1, 0) if q.kind == "conv" else codes
        codes = codes.reshape(-1, q.cols)
        assert q.adc_shift == 0
        np.testing.assert_array_equal(q.weight, codes)
        alpha, beta = attrs[q.name].get("alpha", 1.0), attrs[q.name].get("beta", 1.0)
        if alpha == beta == 1.0:  # Gemm: alpha * A @ B + beta * C
            np.testing.assert_array_equal(q.bias, inits[f"{q.name}.bias_quantized"])
        np.testing.assert_allclose(q.weight_scale, alpha * inits[f"{q.name}.weight_scale"], rtol=1e-7)


def test_qdq_layers_agree_with_onnxruntime_within_one_code(qdq_model, rng):
    # Each layer of the golden model gets onnxruntime's integer inputs and must reproduce its
    # integer output to one code: the crossbar is exact (LOSSLESS) and the requantization rounds
    # acc * mult >> shift half up where onnxruntime rounds acc * real_scale half to even. Layers
    # whose input or output onnxruntime computes in float (a Relu after an Identity) are skipped.
    path, images = qdq_model
    qnet = quantize_onnx(import_onnx(path), LOSSLESS, images)
    model, quants, inits = with_quantized_outputs(path)
    test = images_for(qnet.network, 64, rng)
    outputs = ort_run(model, test, qnet.input_scale)[1:]
    codes = {}
    for node, out in zip(quants, outputs):
        zero_point = int(inits[node.input[2]]) if len(node.input) > 2 else 0
        out = out.astype(np.int64) - zero_point
        codes[node.input[0]] = codes[node.name] = (
            out.transpose(0, 2, 3, 1) if out.ndim == 4 else out.reshape(len(out), 1, 1, -1))
    produced = {n.name: n.output[0] for n in model.graph.node}
    ir = {}  # codes by IR layer, in the IR's order
    for q in qnet.layers:
        c = codes.get(q.name, codes.get(produced.get(q.name, q.name)))
        if c is not None and q.kind == "flatten":  # ONNX flattens (c, y, x), the IR (y, x, c)
            s = qnet.network.shapes[q.inputs[0]]
            c = c.reshape(len(c), s.c, s.h, s.w).transpose(0, 2, 3, 1).reshape(c.shape)
        ir[q.name] = c
    exact = {}
    for q in qnet.layers[1:]:
        if any(ir[name] is None for name in (q.name, *q.inputs)):
            continue
        ours = layer_forward(q, [ir[s] for s in q.inputs], qnet.arch)
        # a ReLU that onnxruntime applies after dequantizing is fused into our layer
        diff = np.abs(ours - (ir[q.name] if q.signed else np.maximum(ir[q.name], 0)))
        assert diff.max() <= 1, q.name
        exact[q.name] = float(np.mean(diff == 0))
    print("exact fraction per layer:", exact)
    assert len(exact) >= len(qnet.layers) - 3 and min(exact.values()) >= 0.99


def test_qdq_network_agrees_with_onnxruntime(qdq_model, rng):
    path, images = qdq_model
    model = import_onnx(path)
    test = images_for(model.network, 200, rng)
    (ref,) = ort_run(path, test, model.input_scale)
    qnet = quantize_onnx(model, LOSSLESS, images)
    diff = run(qnet, test) - np.round(ref / qnet.output.scale)
    assert np.abs(diff).max() <= 1 and np.mean(diff == 0) >= 0.9
    assert np.mean(run(qnet, test).argmax(1) == ref.argmax(1)) >= 0.99
    # an 8-bit ADC with a gain shift loses the low bits of every dot product: codes move, classes less
    default = quantize_onnx(model, Arch(weight_bits=8), images)
    assert all(q.adc_shift > 0 for q in default.crossbar_layers)
    assert np.mean(run(default, test).argmax(1) == ref.argmax(1)) >= 0.95


def test_qdq_digits_classifies_like_onnxruntime(tmp_path):
    data = zoo.dataset("digits")
    calibration, test, labels = data.train_images[:64], data.test_images[:160], data.test_labels[:160]
    src = write(from_network(zoo.network("digits")), tmp_path / "digits.onnx")
    path = ort_quantize(src, tmp_path / "qdq.onnx", calibration)
    (ref,) = ort_run(path, test, import_onnx(path).input_scale)
    ours = run(load_qnetwork(path, LOSSLESS, calibration), test)
    assert np.mean(ours.argmax(1) == ref.argmax(1)) >= 0.99
    assert np.mean(ref.argmax(1) == labels) >= 0.95


@pytest.mark.parametrize("options, message", [
    ({"extra_options": {}}, r"onnx node 'b1_conv2_out_QuantizeLinear' \(QuantizeLinear\): zero point "
                            r"\d+ is not supported \(0 for unsigned, 128 for signed uint8 codes: quantize "
                            r"with activation_type=QuantType.QUInt8 and extra_options="
                            r"\{'ActivationRestrictedAsymmetric': True\}\)$"),
    ({"extra_options": {"ActivationSymmetric": True}},
     r"onnx node 'input_QuantizeLinear' \(QuantizeLinear\): zero point 128 is not supported for the "
     r"network input \(8-bit pixels: unsigned codes, zero point 0 for uint8\)$"),
], ids=["asymmetric", "symmetric"])
def test_qdq_zero_points_outside_the_contract_are_errors(tmp_path, options, message):
    src = write(small_cnn(batchnorm=False), tmp_path / "float.onnx")
    with pytest.raises(UserError, match=message):
        import_onnx(ort_quantize(src, tmp_path / "qdq.onnx", calibration_for(src), **options))


def test_qdq_needs_an_arch_that_holds_its_codes(qdq_model):
    path, images = qdq_model
    model = import_onnx(path)
    first = model.network.layers[1].name
    with pytest.raises(UserError, match=rf"^arch.weight_bits: the weight codes of layer '{first}' reach "
                                        r"127; 4 bits hold up to 7 \(use weight_bits >= 8\)$"):
        quantize_onnx(model, Arch(), images)
    with pytest.raises(UserError, match="^arch.act_bits: a QDQ model has 8-bit activations"):
        quantize_onnx(model, Arch(weight_bits=8, act_bits=6), images)


# topologies without weights ---------------------------------------------------------------------

def test_resnet_topologies_import_without_weights(tmp_path):
    for depth, layers, convs in ((18, 50, 20), (50, 123, 53)):
        net = load_network(str(write(resnet(depth), tmp_path / f"resnet{depth}.onnx")))
        assert (len(net), sum(l.kind == "conv" for l in net)) == (layers, convs)
        assert all(l.weight is None for l in net if l.op.weighted)
        assert net.shapes["layer4.0.add"].h == 7 and net.shapes["fc"].c == 1000
    with pytest.raises(UserError, match=r"^layer 'conv1' \(conv\): has no weights"):
        load_qnetwork(str(tmp_path / "resnet18.onnx"))


def test_missing_external_data_leaves_a_topology(tmp_path):
    model = small_cnn()
    onnx.save(model, str(tmp_path / "model.onnx"), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    with_data = import_onnx(tmp_path / "model.onnx").network
    np.testing.assert_array_equal(with_data["stem"].weight, import_onnx(small_cnn()).network["stem"].weight)
    (tmp_path / "weights.bin").unlink()
    topology = import_onnx(tmp_path / "model.onnx").network
    assert all(l.weight is None for l in topology if l.op.weighted)
    assert map_network(topology, "default").crossbars == map_network(with_data, "default").crossbars


def test_external_data_must_be_inside_the_folder_and_whole(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    path = model_dir / "model.onnx"
    onnx.save(small_cnn(), str(path), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    data = (model_dir / "weights.bin").read_bytes()
    (model_dir / "weights.bin").write_bytes(data[:-4])       # the last tensor lacks one float
    with pytest.raises(UserError, match=r"^onnx initializer 'fc.bias': external data weights.bin "
                                        r"holds 36 bytes from offset \d+; the \[10\] tensor needs 40$"):
        import_onnx(path)
    (model_dir / "weights.bin").rename(tmp_path / "weights.bin")   # now beside the folder
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        t.external_data[0].value = "../weights.bin"
    onnx.save(model, str(path))
    with pytest.raises(UserError, match=r"^onnx initializer 'stem.weight': external data "
                                        r"'../weights.bin' is outside the model's folder"):
        import_onnx(path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_initializers_are_refused_by_name(value):
    model = small_cnn()
    t = next(t for t in model.graph.initializer if t.name == "b1_conv2.weight")
    a = numpy_helper.to_array(t).copy()
    a[1, 0, 2, 2] = value
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    with pytest.raises(UserError, match=r"^onnx initializer 'b1_conv2.weight': has NaN or infinite values$"):
        import_onnx(model)


def test_opset_11_dropout_with_a_ratio_is_an_identity(rng):
    # Up to opset 11 the ratio is an attribute; at inference Dropout passes its input through.
    g = Graph(["N", 1, 8, 8])
    x = g.node("Dropout", [g.conv("input", 4, 3, "conv", pad=1)], "drop", ratio=0.5)
    x = g.node("Flatten", [g.node("Relu", [x], "relu")], "flat", 4 * 64)
    model = g.model(g.gemm(x, 3, "fc"), opset=11)
    plain = Graph(["N", 1, 8, 8])
    y = plain.node("Flatten", [plain.node("Relu", [plain.conv("input", 4, 3, "conv", pad=1)], "relu")],
                   "flat", 4 * 64)
    net, reference = import_onnx(model).network, import_onnx(plain.model(plain.gemm(y, 3, "fc"), opset=11)).network
    assert [l.kind for l in net] == [l.kind for l in reference]
    images = rng.random((4, 8, 8, 1))
    np.testing.assert_array_equal(float_run(net, images), float_run(reference, images))
    np.testing.assert_allclose(float_run(net, images), ort_run(model, images * 255)[0], rtol=1e-5, atol=1e-5)


def test_map_command_reads_a_resnet18_onnx_file(tmp_path):
    path = write(resnet(18), tmp_path / "resnet18.onnx")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["map", "--network", str(path), "--json"]) == 0
    s = json.loads(out.getvalue())
    layers = {l["name"]: l for l in s["layers"]}
    # 7x7x3 rows on one crossbar; 3x3x512 = 4608 rows in 18 row tiles of 256, 512 columns in 2
    assert [layers["conv1"][k] for k in ("rows", "cols", "crossbars")] == [147, 64, 1]
    assert [layers["layer4.0.conv2"][k] for k in ("rows", "row_tiles", "col_tiles", "crossbars")] == \
        [4608, 18, 2, 36]
    assert [layers["fc"][k] for k in ("rows", "cols", "crossbars")] == [512, 1000, 8]
    assert s["crossbars"] == sum(l["crossbars"] for l in s["layers"])
    assert s["cycles_per_image_bound"] == 112 * 112 * 8  # conv1: one 8-cycle MVM per output pixel


# errors -----------------------------------------------------------------------------------------

def _node_model(op, *, params=(), opset=13, inputs=None, before=None, **attrs):
    """input (N, 2, 8, 8) [-> ``before`` op] -> node 'bad' (``op``) with constant ``params``."""
    g = Graph(["N", 2, 8, 8])
    x = g.node(before, ["input"], "pre") if before else "input"
    names = [g.const(f"p{i}", np.asarray(p, np.float32)) for i, p in enumerate(params)]
    return g.model(g.node(op, inputs or [x, *names], "bad", **attrs), opset=opset)


W = np.ones((4, 2, 3, 3))
BAD = {
    "group": (partial(_node_model, "Conv", params=[np.ones((6, 1, 3, 3))], group=3),
              "weight has 1 input channels per group, 3 groups: 3, the input 2"),
    "dilation": (partial(_node_model, "Conv", params=[W], dilations=[2, 2]),
                 "dilations=[2, 2] is not supported (1 only)"),
    "kernel": (partial(_node_model, "Conv", params=[np.ones((4, 2, 3, 1))]),
               "kernel_shape=[3, 1] is not supported (square 2-D kernels only)"),
    "strides": (partial(_node_model, "Conv", params=[W], strides=[1, 2]),
                "strides=[1, 2] is not supported (equal strides only)"),
    "pads": (partial(_node_model, "Conv", params=[W], pads=[0, 0, 1, 1]),
             "pads=[0, 0, 1, 1] is not supported (symmetric padding only: all four equal)"),
    "same": (partial(_node_model, "Conv", params=[np.ones((4, 2, 2, 2))], auto_pad="SAME_UPPER"),
             "auto_pad=SAME_UPPER pads this 8x8 input by 1 rows and 1 columns in total; only symmetric "
             "padding is supported"),
    "attribute": (partial(_node_model, "Conv", params=[W], foo=1),
                  "attribute 'foo' is not supported (supported: auto_pad, dilations, group, "
                  "kernel_shape, pads, strides)"),
    "ceil": (partial(_node_model, "MaxPool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             "ceil_mode=1 is not supported where it changes the output size (floor only)"),
    "avgpad": (partial(_node_model, "AveragePool", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
               "padding 1 is not supported (average pooling without padding only)"),
    "dropout": (partial(_node_model, "Dropout", params=[0.5, 1.0]),
                "training_mode must be a constant false (inference only)"),
    "clip_min": (partial(_node_model, "Clip", params=[1.0, 6.0]),
                 "Clip(min=1.0, max=6.0) is not supported (min=0 only: a clipped ReLU)"),
    "relu_min": (partial(_node_model, "Clip", params=[1.0]),
                 "Clip(min=1.0, max=None) is not supported (only Clip(min=0) without a finite max, "
                 "a ReLU: activations saturate at their largest code, not at a given value)"),
    "op": (partial(_node_model, "Sigmoid"),
           f"op Sigmoid is not supported; supported: {', '.join(SUPPORTED_OPS)}"),
    "domain": (lambda: _node_model("FusedConv", domain="com.microsoft"),
               "op com.microsoft.FusedConv is not supported; supported: "),
    "bn": (partial(_node_model, "BatchNormalization", before="Relu", params=[np.ones(2)] * 4),
           "only a BatchNormalization right after a Conv whose output feeds nothing else is supported "
           "(it is folded into the Conv)"),
    "bias": (partial(_node_model, "Add", before="Relu", params=[np.ones((2, 1, 1))]),
             "adding a constant is supported only as the bias of the Conv, Gemm or MatMul whose output "
             "it reads (and that feeds nothing else)"),
    "flatten": (partial(_node_model, "Flatten", axis=2),
                "axis=2 is not supported (axis=1: (batch, features))"),
    "reshape": (lambda: _reshape_model([0, 2, -1]),
                "target shape [0, 2, -1] is not supported (only (batch, features) = (N, 128), a flatten)"),
    "gemm_map": (partial(_node_model, "Gemm", params=[np.ones((4, 128))], transB=1),
                 "input 'input' is a 2x8x8 map; Gemm needs a (batch, features) vector (add a Flatten)"),
    "transA": (partial(_node_model, "Gemm", before="Flatten", params=[np.ones((128, 4))], transA=1),
               "transA=1 is not supported (the input is (batch, features))"),
}


def _reshape_model(shape):
    g = Graph(["N", 2, 8, 8])
    return g.model(g.node("Reshape", ["input", g.const("shape", np.array(shape, np.int64))], "bad"))


@pytest.mark.parametrize("case", BAD)
def test_unsupported_ops_and_attributes_are_one_line_errors(case):
    build, message = BAD[case]
    model = build()
    op = next(n.op_type for n in model.graph.node if n.name == "bad")
    with pytest.raises(UserError) as info:
        import_onnx(model)
    assert str(info.value).startswith(f"onnx node 'bad' ({op}): {message}")
    assert "\n" not in str(info.value)


def test_model_level_errors(tmp_path):
    with pytest.raises(UserError, match=r"^onnx model 'net': opset 10 is not supported \(opset >= 11\)$"):
        import_onnx(_node_model("Relu", opset=10))
    model = _node_model("Relu")
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(UserError, match=r"^onnx model 'net': input 'input' has shape \['N', 2, 'H', 8\]; "
                                        r"an NCHW image \(N, C, H, W\) with fixed C, H, W is needed$"):
        import_onnx(model)
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xfe not a protobuf")
    with pytest.raises(UserError, match=r"^--network: junk.onnx is not an ONNX model"):
        load_network(str(tmp_path / "junk.onnx"))
    with pytest.raises(UserError, match=r"^--network: cannot read"):
        load_network(str(tmp_path / "missing.onnx"))
