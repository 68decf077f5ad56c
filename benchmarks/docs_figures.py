"""The docs' figures that take minutes to produce, recomputed and compared with the docs.

`tests/test_docs.py` checks the cheap figures (map, accuracy, the fit check) on every run; this
script checks the expensive ones and prints each with ``ok`` or ``STALE`` (exit 1 if any is):

- docs/mapper.md: the ImageNet ResNet-50 (from ONNX) cycles per image, predicted and bound,
  unreplicated (about 30 s);
- docs/generator.md: the deadlock report of digits with half-depth skip FIFOs (`imcflow gen
  --skip-depth-scale 0.5`, then `imcflow sim --images 3`; a Verilator build, minutes cold);
- README: `imcflow gen --network digits.onnx --dataset digits` then `imcflow sim` gives the
  accuracy of `imcflow accuracy --network digits.onnx --dataset digits` (a Verilator build).

Run: ``python benchmarks/docs_figures.py [--skip-sim]``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
from pathlib import Path

from imcflow import cli
from imcflow.sw import zoo
from imcflow.sw.mapper import map_network
from imcflow.sw.perf import analyze

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _cli(*argv) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(list(argv))
    return code, out.getvalue()


def resnet50(tmp: Path) -> tuple[str, str]:
    # here, not at the top: onnx takes about 2 s to import and only the ONNX figures need it
    from onnx_models import resnet, write

    from imcflow.sw.onnx_import import import_onnx

    net = import_onnx(write(resnet(50), tmp / "resnet50.onnx")).network
    mapping = map_network(net, "default")
    sentence = (f"an ImageNet ResNet-50 (7x7 stride-2 conv on the 224x224 input) "
                f"{analyze(mapping).cycles_per_image} against {mapping.cycles_per_image} unreplicated")
    return "docs/mapper.md", sentence


def deadlock(tmp: Path) -> tuple[str, str]:
    out = tmp / "deadlock"
    assert _cli("gen", "--network", "digits", "--skip-depth-scale", "0.5", "-o", str(out))[0] == 0
    code, text = _cli("sim", str(out), "--images", "3", "--json")
    return "docs/generator.md", json.loads(text)["deadlock"]


def onnx_accuracy(tmp: Path) -> tuple[str, str]:
    from onnx_models import from_network, write   # onnx: as in `resnet50`

    path = write(from_network(zoo.network("digits")), tmp / "digits.onnx")
    out = tmp / "digits-onnx"
    assert _cli("gen", "--network", str(path), "--dataset", "digits", "-o", str(out))[0] == 0
    sim = json.loads(_cli("sim", str(out), "--images", "360", "--json")[1])
    acc = json.loads(_cli("accuracy", "--network", str(path), "--dataset", "digits", "--json")[1])
    same = sim["accuracy"] == acc["imc_accuracy"] and sim["bit_exact"] == sim["images"]
    print(f"  sim {sim['bit_exact']}/{sim['images']} bit-exact, accuracy {sim['accuracy']:.4f}; "
          f"imcflow accuracy {acc['imc_accuracy']:.4f}: {'same' if same else 'DIFFERENT'}")
    return "README.md", ("imcflow gen --network digits.onnx --dataset digits" if same
                         else "(sim and accuracy differ)")


def main() -> int:
    checks = [resnet50] + ([] if "--skip-sim" in sys.argv else [deadlock, onnx_accuracy])
    stale = 0
    with tempfile.TemporaryDirectory() as tmp:
        for check in checks:
            doc, expected = check(Path(tmp))
            ok = _flat(expected) in _flat((ROOT / doc).read_text())
            stale += not ok
            print(f"{'ok   ' if ok else 'STALE'} {doc}: {expected}", flush=True)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
