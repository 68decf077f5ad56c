"""Train a digits zoo network in pure NumPy and write its weights (``digits.npz``).

``python -m imcflow.sw.zoo.train_digits [--network digits] [--seed 0] [--epochs 60] [--out PATH]``

The topology is the network's TOML (``digits.toml``, or ``digits_dw.toml`` for the depthwise
``digits_dw``: grouped convs are trained as convs whose weights outside the groups are 0, clipped
ReLUs pass the gradient inside ``(0, max)``; ``digits_ice40.toml``: a flatten passes the map to the
dense layer as it is); the data are the training split of `imcflow.sw.zoo.dataset`
(the held-out split is only evaluated). Training is deterministic for a seed: He initialisation,
shuffled mini-batches, Adam with a cosine learning rate, cross-entropy loss. The last
``--qat-epochs`` epochs are quantization-aware: the forward pass uses the weights quantized to
``--weight-bits`` per output channel (`imcflow.sw.quant.quantize_weights`) and the gradient passes
straight through to the float weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from imcflow.sw import zoo
from imcflow.sw.inference import float_run
from imcflow.sw.ir import Add, Dense, Flatten, GlobalAvgPool, Input, Network, ReLU
from imcflow.sw.weights import he_init, with_weights
from imcflow.sw.ops.clip import Clip
from imcflow.sw.ops.grouped_conv import GroupedConv2d
from imcflow.sw.quant import quantize_weights
from imcflow.sw.toml_net import load_toml

#: the digits networks the trainer knows: their TOML files
TOPOLOGIES = {"digits": zoo.DIGITS_TOML, "digits_dw": zoo.DIGITS_DW_TOML,
              "digits_ice40": zoo.DIGITS_ICE40_TOML}


def _im2col(x, k, stride, pad):
    n, h, w, c = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    cols = np.empty((n, oh, ow, k, k, c))
    for ky in range(k):
        for kx in range(k):
            cols[:, :, :, ky, kx] = xp[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride]
    return cols.reshape(n, oh, ow, k * k * c)


def _col2im(dcols, shape, k, stride, pad):
    n, h, w, c = shape
    oh, ow = dcols.shape[1:3]
    dcols = dcols.reshape(n, oh, ow, k, k, c)
    dxp = np.zeros((n, h + 2 * pad, w + 2 * pad, c))
    for ky in range(k):
        for kx in range(k):
            dxp[:, ky:ky + stride * oh:stride, kx:kx + stride * ow:stride] += dcols[:, :, :, ky, kx]
    return dxp[:, pad:pad + h, pad:pad + w]


def _fake_quant(w, bits):
    matrix = w.reshape(-1, w.shape[-1])
    codes, scale = quantize_weights(matrix, bits)
    return (codes * scale).reshape(w.shape)


def _group_mask(layer, c_in: int) -> np.ndarray:
    """``(C_in, C_out)`` mask of the input channels each output channel of a grouped conv reads."""
    g, c_out = layer.groups, layer.out_channels
    return np.kron(np.eye(g), np.ones((c_in // g, c_out // g))) > 0


def _expand(layer, w, c_in: int) -> np.ndarray:
    """A grouped conv's ``(k, k, C_in / groups, C_out)`` weight as a conv's ``(k, k, C_in, C_out)``
    with zeros outside the groups."""
    mask = _group_mask(layer, c_in)
    dense = np.zeros((*w.shape[:2], c_in, w.shape[3]))
    rows = np.argmax(mask, axis=0)  # first input channel of each output's group
    for j in range(w.shape[2]):
        dense[:, :, rows + j, np.arange(w.shape[3])] = w[:, :, j, :]
    return dense


def _shrink(layer, grad, c_in: int) -> np.ndarray:
    """The gradient of a grouped conv's weight from that of its expanded weight."""
    rows = np.argmax(_group_mask(layer, c_in), axis=0)
    cols = np.arange(grad.shape[3])
    return np.stack([grad[:, :, rows + j, cols] for j in range(c_in // layer.groups)], axis=2)


def forward(net: Network, params, x, weight_bits=None):
    """Activations of every layer and the cache for `backward`."""
    acts, cache = {}, {}
    for layer in net:
        if isinstance(layer, Input):
            acts[layer.name] = x
            continue
        xs = [acts[s] for s in layer.inputs]
        if layer.op.weighted:
            w = params[f"{layer.name}.weight"]
            w = _fake_quant(w, weight_bits) if weight_bits else w
            if isinstance(layer, GroupedConv2d):
                w = _expand(layer, w, xs[0].shape[-1])
            if isinstance(layer, Dense):
                cols = xs[0].reshape(len(x), 1, 1, -1)
            else:
                cols = _im2col(xs[0], layer.kernel, layer.stride, layer.padding)
            cache[layer.name] = (cols, w)
            y = cols @ w.reshape(-1, w.shape[-1]) + params[f"{layer.name}.bias"]
        elif isinstance(layer, ReLU):
            y = np.maximum(xs[0], 0.0)
        elif isinstance(layer, Clip):
            y = np.clip(xs[0], 0.0, layer.max)
        elif isinstance(layer, Flatten):   # the dense layer after it flattens
            y = xs[0]
        elif isinstance(layer, Add):
            y = xs[0] + xs[1]
        elif isinstance(layer, GlobalAvgPool):
            y = xs[0].mean(axis=(1, 2), keepdims=True)
        else:
            raise ValueError(f"the trainer does not support {layer.kind} layers")
        acts[layer.name] = y
    return acts, cache


def backward(net: Network, acts, cache, grad_out):
    """Gradients of every weight and bias given the gradient of the output layer."""
    grads, d = {}, {net.output.name: grad_out}

    def send(name, g):
        d[name] = d[name] + g if name in d else g

    for layer in reversed(net.layers[1:]):
        g = d.pop(layer.name)
        if layer.op.weighted:
            cols, w = cache[layer.name]
            matrix = w.reshape(-1, w.shape[-1])
            grad = (cols.reshape(-1, cols.shape[-1]).T @ g.reshape(-1, g.shape[-1])).reshape(w.shape)
            src = acts[layer.input]
            if isinstance(layer, GroupedConv2d):
                grad = _shrink(layer, grad, src.shape[-1])
            grads[f"{layer.name}.weight"] = grad
            grads[f"{layer.name}.bias"] = g.sum(axis=(0, 1, 2))
            dcols = g @ matrix.T
            send(layer.input, dcols.reshape(src.shape) if isinstance(layer, Dense) else
                 _col2im(dcols, src.shape, layer.kernel, layer.stride, layer.padding))
        elif isinstance(layer, ReLU):
            send(layer.input, g * (acts[layer.input] > 0))
        elif isinstance(layer, Clip):
            src = acts[layer.input]
            send(layer.input, g * ((src > 0) & (src < layer.max)))
        elif isinstance(layer, Flatten):
            send(layer.input, g)
        elif isinstance(layer, Add):
            send(layer.a, g)
            send(layer.b, g)
        elif isinstance(layer, GlobalAvgPool):
            src = acts[layer.input]
            send(layer.input, np.broadcast_to(g / (src.shape[1] * src.shape[2]), src.shape))
    return grads


def train(seed: int = 0, epochs: int = 60, qat_epochs: int = 15, weight_bits: int = 4,
          batch: int = 32, lr: float = 3e-3, train_images: int | None = None,
          log=print, network: str = "digits") -> dict[str, np.ndarray]:
    """Trained float parameters of the digits ``network`` (`TOPOLOGIES`; ``<layer>.weight``,
    ``<layer>.bias``), on the first ``train_images`` training images (all when None)."""
    data = zoo.dataset("digits")
    topology = load_toml(TOPOLOGIES[network], weights=False)
    params = {}
    for layer in he_init(topology, seed):
        if layer.op.weighted:
            params[f"{layer.name}.weight"] = layer.weight.copy()
            params[f"{layer.name}.bias"] = layer.bias.copy()
    x_all, y_all = data.train_images[:train_images] / 255.0, data.train_labels[:train_images]
    rng = np.random.default_rng(seed)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    step, steps = 0, epochs * -(-len(x_all) // batch)
    for epoch in range(epochs):
        bits = weight_bits if epoch >= epochs - qat_epochs else None
        order = rng.permutation(len(x_all))
        loss_sum = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            acts, cache = forward(topology, params, x_all[idx], bits)
            logits = acts[topology.output.name].reshape(len(idx), -1)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            loss_sum += -np.log(p[np.arange(len(idx)), y_all[idx]] + 1e-12).sum()
            p[np.arange(len(idx)), y_all[idx]] -= 1.0
            grads = backward(topology, acts, cache, (p / len(idx)).reshape(len(idx), 1, 1, -1))
            step += 1
            rate = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
            for k in params:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                params[k] -= rate * (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
        net = with_weights(topology, params)
        acc = np.mean(float_run(net, data.test_images / 255.0).argmax(axis=1) == data.test_labels)
        log(f"epoch {epoch + 1:3d}{' (qat)' if bits else '      '}: loss "
            f"{loss_sum / len(x_all):.4f}, held-out float accuracy {acc:.4f}")
    return params


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imcflow.sw.zoo.train_digits",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=sorted(TOPOLOGIES), default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--qat-epochs", type=int, default=15)
    parser.add_argument("--weight-bits", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: <network>.npz beside the network's TOML")
    args = parser.parse_args(argv)
    params = train(args.seed, args.epochs, args.qat_epochs, args.weight_bits,
                   log=lambda s: print(s, file=sys.stderr), network=args.network)
    args.out = args.out or TOPOLOGIES[args.network].with_suffix(".npz")
    np.savez(args.out, **{k: v.astype(np.float32) for k, v in params.items()})
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
