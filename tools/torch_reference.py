#!/usr/bin/env python3
"""PyTorch's answer for a fer model on one batch: logits, loss and parameter gradients.

    torch_reference.py --model M.npz --input X.npy --labels Y.npy --out R.npz
                       [--train] [--label-smoothing E] [--class-weights W.npy] [--float64]

Writes R.npz with "logits", "loss" and, for every trainable fer parameter, its gradient
under the same name in fer's layout. With --train the network runs in training mode
(BatchNorm on batch statistics; Dropout active, so give it rate-0 dropout to compare).
With --float64 PyTorch computes in double precision: the exact answer, against which
fer's and PyTorch's float32 rounding can be told apart on deep, ill-conditioned networks.
"""
import argparse
import sys
import os

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fer_torch import load_model, to_fer_layout  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--train", action="store_true")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--class-weights")
    p.add_argument("--float64", action="store_true")
    a = p.parse_args()

    torch.set_num_threads(1)
    net, _ = load_model(a.model)
    dtype = np.float64 if a.float64 else np.float32
    if a.float64:
        net = net.double()
    net.train(a.train)
    x = torch.from_numpy(np.load(a.input).astype(dtype))
    y = torch.from_numpy(np.load(a.labels).astype(np.int64))
    w = torch.from_numpy(np.load(a.class_weights).astype(dtype)) if a.class_weights else None
    logits = net(x)
    loss = F.cross_entropy(logits, y, weight=w, label_smoothing=a.label_smoothing)
    loss.backward()
    out = {"logits": logits.detach().numpy(), "loss": np.asarray(loss.item(), dtype)}
    for name, tensor, kind in net.fer_parameters():
        if tensor.grad is not None:
            out[name] = to_fer_layout(tensor.grad.numpy(), kind)
    np.savez(a.out, **out)


if __name__ == "__main__":
    main()
