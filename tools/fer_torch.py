"""Rebuild a fer model (.npz with its architecture JSON) as a PyTorch module.

Used to check fer's numerics against PyTorch (tests/test_torch_agreement.cpp) and, later,
to benchmark the same network in PyTorch. The module takes NHWC input like fer and
converts to PyTorch's NCHW inside; padding follows TensorFlow/Keras 'same' semantics
(the extra pixel goes bottom/right), which PyTorch's symmetric padding does not do.

Layouts: fer stores Keras layouts -- Conv2D [kh, kw, in, out], DepthwiseConv2D
[kh, kw, C, M] (M = depth_multiplier), Dense [in, out] -- and PyTorch wants
[out, in, kh, kw], [C*M, 1, kh, kw], [out, in]; `to_torch_layout` / `to_fer_layout`
convert both ways. A depthwise conv with multiplier M is PyTorch's grouped conv with
groups=C and C*M outputs: its output channel c*M + m is group c's filter m, the same
order as Keras's.

Containers: Sequential is flattened; Residual (y = x + body(x), MobileNet V2's inverted
residual blocks) becomes a module holding its body.
"""
import json
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def same_padding(size, kernel, stride):
    """TensorFlow 'same': (out, pad_before, pad_after) along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def pad_for(x, kernel, stride, padding, value=0.0):
    """Pads an NCHW tensor the way TensorFlow does for `padding`."""
    if padding == "valid":
        return x
    _, top, bottom = same_padding(x.shape[2], kernel[0], stride[0])
    _, left, right = same_padding(x.shape[3], kernel[1], stride[1])
    return F.pad(x, (left, right, top, bottom), value=value)


class Conv2D(nn.Module):
    def __init__(self, cfg, in_channels, depthwise=False):
        super().__init__()
        self.cfg = cfg
        self.kernel = tuple(cfg["kernel_size"])
        self.stride = tuple(cfg["strides"])
        self.padding = cfg["padding"]
        self.depthwise = depthwise
        self.multiplier = cfg.get("depth_multiplier", 1) if depthwise else 1
        out = in_channels * self.multiplier if depthwise else cfg["filters"]
        self.groups = in_channels if depthwise else 1
        w_in = 1 if depthwise else in_channels
        self.weight = nn.Parameter(torch.zeros(out, w_in, *self.kernel))
        self.bias = nn.Parameter(torch.zeros(out)) if cfg.get("use_bias", True) else None
        self.out_channels = out

    def forward(self, x):
        x = pad_for(x, self.kernel, self.stride, self.padding)
        return F.conv2d(x, self.weight, self.bias, self.stride, groups=self.groups)


class Pool(nn.Module):
    def __init__(self, cfg, kind):
        super().__init__()
        self.kind = kind
        self.kernel = tuple(cfg["pool_size"])
        self.stride = tuple(cfg.get("strides") or cfg["pool_size"])
        self.padding = cfg.get("padding", "valid")

    def forward(self, x):
        if self.kind == "max":
            x = pad_for(x, self.kernel, self.stride, self.padding, value=-math.inf)
            return F.max_pool2d(x, self.kernel, self.stride)
        # Keras averages over the real cells only: sum of values / count of real cells.
        ones = torch.ones_like(x[:, :1])
        s = F.avg_pool2d(pad_for(x, self.kernel, self.stride, self.padding), self.kernel, self.stride)
        c = F.avg_pool2d(pad_for(ones, self.kernel, self.stride, self.padding), self.kernel, self.stride)
        return s / c


class FlattenNHWC(nn.Module):
    def forward(self, x):  # fer flattens in NHWC order
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class ReLU(nn.Module):
    def __init__(self, max_value):
        super().__init__()
        self.max_value = max_value

    def forward(self, x):
        return torch.clamp(x, min=0, max=self.max_value) if self.max_value else F.relu(x)


class ReshapeNHWC(nn.Module):
    """Keras's Reshape of one example, in fer's NHWC element order."""

    def __init__(self, target):
        super().__init__()
        self.target = tuple(target)  # resolved: no -1

    def forward(self, x):
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        x = x.reshape(x.shape[0], *self.target)
        return x.permute(0, 3, 1, 2) if len(self.target) == 3 else x


class ZeroPad(nn.Module):
    def __init__(self, top, bottom, left, right):
        super().__init__()
        self.pad = (left, right, top, bottom)  # F.pad's order: last axis first

    def forward(self, x):
        return F.pad(x, self.pad)


def zero_padding(p):
    """(top, bottom, left, right) from Keras's int, [rows, cols] or [[t, b], [l, r]]."""
    if isinstance(p, (int, float)):
        return (int(p),) * 4
    rows, cols = p
    rows = (rows, rows) if isinstance(rows, (int, float)) else rows
    cols = (cols, cols) if isinstance(cols, (int, float)) else cols
    return int(rows[0]), int(rows[1]), int(cols[0]), int(cols[1])


class Body(nn.Module):
    """The children of a container, run in order; `entries` holds their (name, type)."""

    def __init__(self):
        super().__init__()
        self.entries = []
        self.layers = nn.ModuleList()

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return x


class Residual(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class FerNet(nn.Module):
    """A flat list of (fer name, type, module) built from the architecture's layer tree
    (Residual blocks keep their children in a Body of their own)."""

    def __init__(self, arch):
        super().__init__()
        self.arch = arch
        h, w, c = arch["input_shape"]
        self.body = Body()
        self.shape = (c, h, w)  # NCHW per example, or (features,)
        self._add(arch["network"], self.body)

    @property
    def entries(self):  # (name, type) of the top-level layers
        return self.body.entries

    @property
    def layers(self):
        return self.body.layers

    def _add(self, cfg, body):
        t = cfg["type"]
        if t == "Sequential":
            for child in cfg["layers"]:
                self._add(child, body)
            return
        c = self.shape[0]
        if t == "Residual":
            inner = Body()
            before = self.shape
            for child in cfg["layers"]:
                self._add(child, inner)
            if self.shape != before:
                raise ValueError(f"fer_torch: residual block {cfg['name']} maps {before} to {self.shape}")
            m = Residual(inner)
        elif t == "ZeroPadding2D":
            top, bottom, left, right = zero_padding(cfg["padding"])
            m = ZeroPad(top, bottom, left, right)
            self.shape = (c, self.shape[1] + top + bottom, self.shape[2] + left + right)
        elif t == "Reshape":
            n = int(np.prod(self.shape))
            target = list(cfg["target_shape"])
            if -1 in target:
                known = int(np.prod([d for d in target if d != -1]))
                target[target.index(-1)] = n // known
            if int(np.prod(target)) != n:
                raise ValueError(f"fer_torch: cannot reshape {self.shape} to {cfg['target_shape']} ({cfg['name']})")
            m = ReshapeNHWC(target)
            self.shape = (target[2], target[0], target[1]) if len(target) == 3 else tuple(target)
        elif t in ("Conv2D", "DepthwiseConv2D"):
            m = Conv2D(cfg, c, depthwise=(t == "DepthwiseConv2D"))
            k, s = m.kernel, m.stride
            if cfg["padding"] == "same":
                oh, ow = math.ceil(self.shape[1] / s[0]), math.ceil(self.shape[2] / s[1])
            else:
                oh, ow = (self.shape[1] - k[0]) // s[0] + 1, (self.shape[2] - k[1]) // s[1] + 1
            self.shape = (m.out_channels, oh, ow)
        elif t == "BatchNormalization":
            eps = cfg.get("epsilon", 1e-3)
            # Keras momentum 0.99 == PyTorch momentum 0.01.
            mom = 1.0 - cfg.get("momentum", 0.99)
            m = (nn.BatchNorm2d if len(self.shape) == 3 else nn.BatchNorm1d)(c, eps=eps, momentum=mom)
        elif t == "ReLU":
            m = ReLU(cfg.get("max_value", 0) or None)
        elif t in ("MaxPooling2D", "AveragePooling2D"):
            m = Pool(cfg, "max" if t == "MaxPooling2D" else "avg")
            k, s = m.kernel, m.stride
            if m.padding == "same":
                self.shape = (c, math.ceil(self.shape[1] / s[0]), math.ceil(self.shape[2] / s[1]))
            else:
                self.shape = (c, (self.shape[1] - k[0]) // s[0] + 1, (self.shape[2] - k[1]) // s[1] + 1)
        elif t == "GlobalAveragePooling2D":
            m = nn.AdaptiveAvgPool2d(1)
            m = nn.Sequential(m, nn.Flatten())
            self.shape = (c,)
        elif t == "Flatten":
            m = FlattenNHWC()
            self.shape = (int(np.prod(self.shape)),)
        elif t == "Dense":
            m = nn.Linear(self.shape[0], cfg["units"], bias=cfg.get("use_bias", True))
            self.shape = (cfg["units"],)
        elif t == "Dropout":
            m = nn.Dropout(cfg["rate"])
        elif t == "Softmax":
            m = nn.Softmax(dim=1)
        else:
            raise ValueError(f"fer_torch: layer type {t} ({cfg['name']}) is not supported")
        body.entries.append((cfg["name"], t))
        body.layers.append(m)

    def forward(self, x_nhwc):
        return self.body(x_nhwc.permute(0, 3, 1, 2))

    # ---- weights -------------------------------------------------------------------
    def fer_parameters(self, body=None):
        """(fer name, torch tensor, kind) for every array a fer model file holds."""
        body = self.body if body is None else body
        out = []
        for (name, t), m in zip(body.entries, body.layers):
            if t == "Residual":
                out += self.fer_parameters(m.body)
            elif t == "Conv2D":
                out.append((f"{name}/kernel", m.weight, "conv"))
                if m.bias is not None:
                    out.append((f"{name}/bias", m.bias, "vec"))
            elif t == "DepthwiseConv2D":
                kind = "depthwise" if m.multiplier == 1 else f"depthwise:{m.multiplier}"
                out.append((f"{name}/depthwise_kernel", m.weight, kind))
                if m.bias is not None:
                    out.append((f"{name}/bias", m.bias, "vec"))
            elif t == "Dense":
                out.append((f"{name}/kernel", m.weight, "dense"))
                if m.bias is not None:
                    out.append((f"{name}/bias", m.bias, "vec"))
            elif t == "BatchNormalization":
                out += [(f"{name}/gamma", m.weight, "vec"), (f"{name}/beta", m.bias, "vec"),
                        (f"{name}/moving_mean", m.running_mean, "vec"),
                        (f"{name}/moving_variance", m.running_var, "vec")]
        return out

    def load_fer(self, arrays):
        with torch.no_grad():
            for name, tensor, kind in self.fer_parameters():
                tensor.copy_(torch.from_numpy(to_torch_layout(np.asarray(arrays[name], np.float32), kind)))


def depth_multiplier(kind):
    """"depthwise" -> 1, "depthwise:M" -> M."""
    return int(kind.split(":")[1]) if ":" in kind else 1


def to_torch_layout(a, kind):
    if kind == "conv":
        return np.ascontiguousarray(a.transpose(3, 2, 0, 1))  # [kh,kw,in,out] -> [out,in,kh,kw]
    if kind.startswith("depthwise"):
        # [kh,kw,C,M] -> [C,M,kh,kw] -> [C*M,1,kh,kw]: output channel c*M + m.
        kh, kw, c, m = a.shape
        return np.ascontiguousarray(a.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))
    if kind == "dense":
        return np.ascontiguousarray(a.T)  # [in,out] -> [out,in]
    return a


def to_fer_layout(a, kind):
    if kind == "conv":
        return np.ascontiguousarray(a.transpose(2, 3, 1, 0))
    if kind.startswith("depthwise"):
        m = depth_multiplier(kind)
        cm, _, kh, kw = a.shape
        return np.ascontiguousarray(a.reshape(cm // m, m, kh, kw).transpose(2, 3, 0, 1))
    if kind == "dense":
        return np.ascontiguousarray(a.T)
    return a


def load_model(path):
    """(FerNet with the file's weights, architecture dict)."""
    arrays = np.load(path)
    arch = json.loads(str(arrays["architecture"]))
    net = FerNet(arch)
    net.load_fer(arrays)
    return net, arch
