"""Train the ``digits`` zoo network in pure NumPy and write ``digits.npz``.

``python -m imcflow.sw.zoo.train_digits [--seed 0] [--epochs 60] [--out PATH]``

The topology is ``digits.toml``; the data are the training split of `imcflow.sw.zoo.dataset`
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
from imcflow.sw.ir import Add, Conv2d, Dense, GlobalAvgPool, Input, Network, ReLU
from imcflow.sw.weights import he_init, with_weights
from imcflow.sw.quant import quantize_weights
from imcflow.sw.toml_net import load_toml

OUT = Path(__file__).with_name("digits.npz")


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


def forward(net: Network, params, x, weight_bits=None):
    """Activations of every layer and the cache for `backward`."""
    acts, cache = {}, {}
    for layer in net:
        if isinstance(layer, Input):
            acts[layer.name] = x
            continue
        xs = [acts[s] for s in layer.inputs]
        if isinstance(layer, (Conv2d, Dense)):
            w = params[f"{layer.name}.weight"]
            w = _fake_quant(w, weight_bits) if weight_bits else w
            if isinstance(layer, Conv2d):
                cols = _im2col(xs[0], layer.kernel, layer.stride, layer.padding)
            else:
                cols = xs[0].reshape(len(x), 1, 1, -1)
            cache[layer.name] = (cols, w)
            y = cols @ w.reshape(-1, w.shape[-1]) + params[f"{layer.name}.bias"]
        elif isinstance(layer, ReLU):
            y = np.maximum(xs[0], 0.0)
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
        if isinstance(layer, (Conv2d, Dense)):
            cols, w = cache[layer.name]
            matrix = w.reshape(-1, w.shape[-1])
            grads[f"{layer.name}.weight"] = (cols.reshape(-1, cols.shape[-1]).T
                                             @ g.reshape(-1, g.shape[-1])).reshape(w.shape)
            grads[f"{layer.name}.bias"] = g.sum(axis=(0, 1, 2))
            dcols = g @ matrix.T
            src = acts[layer.input]
            send(layer.input, _col2im(dcols, src.shape, layer.kernel, layer.stride, layer.padding)
                 if isinstance(layer, Conv2d) else dcols.reshape(src.shape))
        elif isinstance(layer, ReLU):
            send(layer.input, g * (acts[layer.input] > 0))
        elif isinstance(layer, Add):
            send(layer.a, g)
            send(layer.b, g)
        elif isinstance(layer, GlobalAvgPool):
            src = acts[layer.input]
            send(layer.input, np.broadcast_to(g / (src.shape[1] * src.shape[2]), src.shape))
    return grads


def train(seed: int = 0, epochs: int = 60, qat_epochs: int = 15, weight_bits: int = 4,
          batch: int = 32, lr: float = 3e-3, train_images: int | None = None,
          log=print) -> dict[str, np.ndarray]:
    """Trained float parameters of the digits network (``<layer>.weight``, ``<layer>.bias``),
    on the first ``train_images`` training images (all when None)."""
    data = zoo.dataset("digits")
    topology = load_toml(zoo.DIGITS_TOML, weights=False)
    params = {}
    for layer in he_init(topology, seed):
        if isinstance(layer, (Conv2d, Dense)):
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--qat-epochs", type=int, default=15)
    parser.add_argument("--weight-bits", type=int, default=4)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    params = train(args.seed, args.epochs, args.qat_epochs, args.weight_bits,
                   log=lambda s: print(s, file=sys.stderr))
    np.savez(args.out, **{k: v.astype(np.float32) for k, v in params.items()})
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
