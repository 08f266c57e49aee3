#!/usr/bin/env python3
"""Average the weights of several fer models of one architecture into one model ("model soup").

    tools/average_weights.py OUT.npz A.npz B.npz [C.npz ...]

Every float array (kernels, biases, BatchNorm gamma/beta and moving statistics) of OUT is
the mean of the same array in the inputs, stored as float32; the text entries
(`architecture`, `training`) are the first input's. The inputs must share the architecture
and every array's name and shape, or nothing is written.

Averaged BatchNorm moving statistics are not the statistics of the averaged network;
re-estimate them with one pass at learning rate 0 over training images, e.g.
`fer train --weights OUT.npz --lr 0 --epochs 1 --max-per-class 600 ... --out DIR`
(DIR/last.npz then holds the same weights with fresh statistics). docs/ACCURACY.md
("Weight averaging of two students") has the experiments this was written for.

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves
accuracy without increasing inference time", ICML 2022.
"""
import os
import sys
import tempfile

import numpy as np


def fail(message):
    sys.exit(f"average_weights.py: {message}")


def main(argv):
    if len(argv) < 4:
        fail("usage: average_weights.py OUT.npz A.npz B.npz [C.npz ...] (two or more inputs)")
    out, inputs = argv[1], argv[2:]
    models = []
    for path in inputs:
        try:
            models.append(np.load(path))
        except (OSError, ValueError) as e:
            fail(f"{path}: cannot read it as .npz ({e})")
    first = models[0]
    if "architecture" not in first:
        fail(f"{inputs[0]}: no 'architecture' entry: not a fer model")
    for path, model in zip(inputs[1:], models[1:]):
        if set(model.keys()) != set(first.keys()):
            only = sorted(set(model.keys()) ^ set(first.keys()))[:5]
            fail(f"{path} and {inputs[0]} hold different arrays (e.g. {', '.join(only)})")
        if str(model["architecture"]) != str(first["architecture"]):
            fail(f"{path}: its architecture differs from {inputs[0]}'s")
        for name in first.keys():
            if model[name].shape != first[name].shape:
                fail(f"{path}: '{name}' is {model[name].shape}, in {inputs[0]} {first[name].shape}")

    averaged = {}
    for name in first.keys():
        if first[name].dtype.kind in "US":  # text: architecture, training record
            averaged[name] = first[name]
        else:  # float16 models load as float32, as fer does
            total = sum(model[name].astype(np.float64) for model in models)
            averaged[name] = (total / len(models)).astype(np.float32)

    # Written next to OUT and renamed over it, so a failure never leaves half a model.
    directory = os.path.dirname(os.path.abspath(out))
    handle, temporary = tempfile.mkstemp(suffix=".npz", dir=directory)
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **averaged)
        os.replace(temporary, out)
    except BaseException:
        os.unlink(temporary)
        raise
    arrays = sum(1 for a in averaged.values() if a.dtype.kind == "f")
    print(f"{out}: mean of {len(models)} models, {arrays} arrays each")


if __name__ == "__main__":
    main(sys.argv)
