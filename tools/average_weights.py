#!/usr/bin/env python3
"""Average the weights of several fer models of one architecture into one model ("model soup").

    tools/average_weights.py OUT.npz A.npz B.npz [C.npz ...]

Every float array (kernels, biases, BatchNorm gamma/beta and moving statistics) of OUT is
the mean of the same array in the inputs, stored as float32; other arrays (integer
counters) must be equal in all inputs and are copied. The inputs must hold the same arrays
with the same shapes, or nothing is written. The text entries are the first input's:
`training` (how it was trained) and `architecture` (a note says when another input's
differs in its settings, e.g. a dropout rate or a crop).

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
            model = np.load(path)
        except (OSError, ValueError) as e:
            fail(f"{path}: cannot read it as .npz ({e})")
        if not isinstance(model, np.lib.npyio.NpzFile):
            fail(f"{path}: a single .npy array, not a .npz model")
        models.append(model)
    first = models[0]
    if "architecture" not in first:
        fail(f"{inputs[0]}: no 'architecture' entry: not a fer model")
    for path, model in zip(inputs[1:], models[1:]):
        if set(model.keys()) != set(first.keys()):
            only = sorted(set(model.keys()) ^ set(first.keys()))[:5]
            fail(f"{path} and {inputs[0]} hold different arrays (e.g. {', '.join(only)})")
        for name in first.keys():
            if model[name].shape != first[name].shape:
                fail(f"{path}: '{name}' is {model[name].shape}, in {inputs[0]} {first[name].shape}")
    for path, model in zip(inputs[1:], models[1:]):
        if str(model["architecture"]) != str(first["architecture"]):
            # Same arrays, other settings (a dropout rate, a crop): the average is still one
            # network of these shapes; it is written with the first input's settings.
            print(f"average_weights.py: note: {path}'s architecture settings differ from "
                  f"{inputs[0]}'s; the average takes {inputs[0]}'s", file=sys.stderr)

    averaged = {}
    for name in first.keys():
        if name in ("training", "architecture"):  # the first input's (see the note above)
            averaged[name] = first[name]
        elif first[name].dtype.kind != "f":  # other text, integer counters: must be equal
            if any(not np.array_equal(model[name], first[name]) for model in models[1:]):
                fail(f"'{name}' ({first[name].dtype}) differs between the inputs and is not "
                     "a float array to average")
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
