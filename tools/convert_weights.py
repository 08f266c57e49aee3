#!/usr/bin/env python3
"""Convert ImageNet weights from other frameworks into a fer model file (.npz).

    convert_weights.py --from tfjs  DIR_WITH_model.json OUT.npz [--labels LABELS.json]
    convert_weights.py --from keras WEIGHTS.h5 OUT.npz [--arch A] [--alpha X] [--size PX]
    convert_weights.py --from torch MODEL.pth  OUT.npz [--arch mobilenet_v2] [--alpha X] [--size PX]

Sources:
  tfjs   a TensorFlow.js "layers" folder (model.json + binary shards): Keras MobileNet V1.
         Class names come from metadata.json beside model.json when there is one.
  keras  a Keras 2 / tf.keras .h5 file, from model.save_weights() (root attribute
         "layer_names") or model.save() (weights under "model_weights", architecture in
         "model_config"): MobileNet V1, MobileNet V2 or VGG16 of keras.applications.
  torch  torchvision's mobilenet_v2: a state dict saved with torch.save(model.state_dict()),
         a checkpoint dict holding one under "state_dict", or a whole pickled model.

Options:
  --arch mobilenet_v1 | mobilenet_v2 | vgg16   read from the layer names when left out
  --alpha X      width multiplier; read from the filter counts when left out
  --size PX      input size the model is built for (default: what the file says, else 224;
                 VGG16 with its classifier: fixed by fc1's shape)
  --labels FILE  JSON class names, a list or {"labels": [...]} (e.g. a TF.js metadata.json);
                 without it a 1000-class model has names class_0 ... class_999
Whether the file has the classifier (include_top) and how many classes it has are read from
the weights. Without the classifier the output holds the backbone only: use it with
`fer train --weights OUT.npz --skip-mismatched`, which adds a new head.

The output is a complete fer model: one float32 array per parameter under fer's (Keras's)
names -- "conv_dw_1/depthwise_kernel", "conv_pw_1_bn/moving_mean", ... -- and the entry
"architecture": {"name": ..., "options": {...}} that fer expands into the full layer tree
(fer/architectures_imagenet.h), with the class names and preprocessing. `fer predict`,
`fer infer`, `fer eval` and `fer train --weights` use it directly.

Names and layouts: fer stores Keras's layouts (Conv2D [kh, kw, in, out], DepthwiseConv2D
[kh, kw, in, multiplier], Dense [in, out]), so TF.js and Keras arrays are copied as they
are ("conv1/kernel:0" becomes "conv1/kernel"; newer Keras calls MobileNet V2's classifier
"predictions", fer calls it "Logits"). PyTorch's are renamed (features.0.0 -> Conv1,
features.0.1 -> bn_Conv1, features.1.conv.0.0 -> expanded_conv_depthwise, ...,
features.18.0 -> Conv_1, classifier.1 -> Logits) and transposed (Conv [out, in, kh, kw] ->
[kh, kw, in, out], depthwise [C, 1, kh, kw] -> [kh, kw, C, 1], Linear [out, in] -> [in, out];
BatchNorm weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance;
num_batches_tracked is dropped), and the model is built as PyTorch computes it: symmetric
padding ("padding": "torch"), BatchNorm epsilon 1e-5, torchvision's preprocessing
("scale": "torch").

The file is written atomically and, before it replaces OUT.npz, loaded by fer itself
(`fer summary`; the binary is $FER_BINARY or build/fer), so a source that does not fit
fails here, naming the missing, unexpected or mismatched arrays, and not later.
Errors are one line on stderr and exit status 1.

Needs numpy; h5py for --from keras; torch (and torchvision for a pickled model) for
--from torch (Debian: python3-numpy, python3-h5py, python3-torch, python3-torchvision).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

ARCHITECTURES = ("mobilenet_v1", "mobilenet_v2", "vgg16")


class ConvertError(Exception):
    pass


def one_line(text):
    return " ".join(str(text).split())


def float_array(a, where):
    """The array as float32, refusing what cannot be a weight (ints, complex, NaN)."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        raise ConvertError(f"{where}: complex dtype {a.dtype}; weights must be real floating point")
    if a.dtype.kind != "f":
        raise ConvertError(f"{where}: dtype {a.dtype}, expected floating point (float16/32/64)")
    if not np.isfinite(a).all():
        raise ConvertError(f"{where}: contains NaN or infinity")
    return a.astype(np.float32)


# ---- output ---------------------------------------------------------------------------

def write_model(out_path, arrays, name, options, check=None):
    """Writes arrays + {"name", "options"} atomically (temp file in the same folder, then
    rename), so an interrupted or failed conversion never leaves a bad model behind.
    `check(temp_path)` runs on the complete temp file before the rename."""
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise ConvertError(f"{out_path}: folder {folder} does not exist")
    entries = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    entries["architecture"] = np.array(json.dumps({"name": name, "options": options}))
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def set_classes(options, count, labels):
    if count is None:
        raise ConvertError("the classifier's kernel is missing, so the class count is unknown")
    if labels is not None:
        if len(labels) != count:
            raise ConvertError(f"{len(labels)} labels for {count} classes")
        options["classes"] = labels
    else:
        options["num_classes"] = count


# ---- TensorFlow.js layers format ------------------------------------------------------

def read_tfjs(folder):
    """model.json + binary shards -> {weight name: array}, read by the weights manifest
    (each group's shards are concatenated; the group's weights follow in order)."""
    model_json = os.path.join(folder, "model.json")
    if not os.path.isfile(model_json):
        raise ConvertError(f"{folder}: no model.json (expected a TF.js layers-format folder)")
    with open(model_json) as f:
        model = json.load(f)
    if "weightsManifest" not in model or "modelTopology" not in model:
        raise ConvertError(f"{model_json}: not a TF.js layers model (no weightsManifest/modelTopology)")
    arrays = {}
    for group in model["weightsManifest"]:
        data = b""
        for path in group["paths"]:
            shard = os.path.join(folder, path)
            if not os.path.isfile(shard):
                raise ConvertError(f"{model_json}: weight shard {path} is missing")
            with open(shard, "rb") as f:
                data += f.read()
        offset = 0
        for w in group["weights"]:
            if w.get("dtype", "float32") != "float32" or "quantization" in w:
                raise ConvertError(f"{model_json}: {w['name']}: only unquantized float32 is "
                                   f"supported, got {w.get('dtype')}")
            count = int(np.prod(w["shape"])) if w["shape"] else 1
            end = offset + 4 * count
            if end > len(data):
                raise ConvertError(f"{model_json}: shard(s) {group['paths']} too short for "
                                   f"{w['name']} {w['shape']} ({len(data)} bytes)")
            arrays[w["name"]] = np.frombuffer(data[offset:end], dtype="<f4").reshape(w["shape"])
            offset = end
        if offset != len(data):
            raise ConvertError(f"{model_json}: shard(s) {group['paths']} have {len(data) - offset} "
                               "bytes beyond the weights the manifest lists")
    return model["modelTopology"], arrays


def keras_layers(topology):
    cfg = topology.get("model_config", topology)
    return cfg["config"]["layers"] if isinstance(cfg.get("config"), dict) else cfg["config"]


def strip_suffix(name):
    """TF.js and Keras sometimes suffix variable names ("conv1/kernel_1", ":0")."""
    layer, _, what = name.partition("/")
    what = what.split(":")[0]
    if what.rsplit("_", 1)[-1].isdigit() and not what.startswith("moving"):
        what = what.rsplit("_", 1)[0]
    return f"{layer}/{what}"


def mobilenet_v1_tfjs_options(layers, labels):
    """Reads alpha, depth multiplier, input size and the top from a Keras MobileNet config."""
    by_name = {l["config"]["name"]: l for l in layers}
    if "conv1" not in by_name or "conv_pw_13" not in by_name:
        raise ConvertError("not a Keras MobileNet V1 (no conv1 / conv_pw_13 layers)")
    alpha = by_name["conv1"]["config"]["filters"] / 32.0
    shape = layers[0]["config"].get("batch_input_shape", [None, 224, 224, 3])
    options = {"alpha": alpha, "size": shape[1] or 224, "channels": shape[3] or 3,
               "depth_multiplier": by_name["conv_dw_1"]["config"].get("depth_multiplier", 1),
               "scale": "symmetric"}
    for l in layers:
        c = l["config"]
        if l["class_name"] in ("Conv2D", "DepthwiseConv2D") and c.get("padding") != "same":
            raise ConvertError(f"layer {c['name']}: padding {c.get('padding')!r}; fer's MobileNet "
                               "V1 uses 'same' everywhere (Keras 2.1.x); a ZeroPadding2D variant "
                               "is not supported from TF.js")
    if "conv_preds" in by_name:
        options["include_top"] = True
        if "dropout" in by_name:
            options["dropout"] = by_name["dropout"]["config"]["rate"]
        set_classes(options, by_name["conv_preds"]["config"]["filters"], labels)
    return options


def convert_tfjs(src, labels):
    topology, raw = read_tfjs(src)
    layers = keras_layers(topology)
    arrays = {strip_suffix(k): float_array(v, f"{src}: {k}") for k, v in raw.items()}
    sources = {strip_suffix(k): k for k in raw}
    if labels is None and os.path.isfile(os.path.join(src, "metadata.json")):
        with open(os.path.join(src, "metadata.json")) as f:
            labels = json.load(f).get("labels")
    names = {l["config"]["name"] for l in layers}
    if "conv_pw_13" in names:
        return "mobilenet_v1", mobilenet_v1_tfjs_options(layers, labels), arrays, sources
    raise ConvertError(f"{src}: unrecognized architecture (supported from TF.js: Keras MobileNet V1)")


# ---- architecture options from the weights (Keras and torch) ---------------------------

def make_divisible(v, divisor=8):
    """Keras's / torchvision's _make_divisible (fer::arch::make_divisible)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# The widths keras.applications ships MobileNet V2 weights for.
V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def v2_filters(alpha):
    """Output filters of the MobileNet V2 layers that pin alpha down, for one alpha."""
    return {"Conv1": make_divisible(32 * alpha), "expanded_conv_project": make_divisible(16 * alpha),
            "block_1_project": make_divisible(24 * alpha), "block_3_project": make_divisible(32 * alpha),
            "block_6_project": make_divisible(64 * alpha), "block_10_project": make_divisible(96 * alpha),
            "block_13_project": make_divisible(160 * alpha), "block_16_project": make_divisible(320 * alpha),
            "Conv_1": make_divisible(1280 * alpha) if alpha > 1.0 else 1280}


def kernel_out(arrays, layer):
    k = arrays.get(f"{layer}/kernel", arrays.get(f"{layer}/depthwise_kernel"))
    return None if k is None or k.ndim < 1 else int(k.shape[-1])


def size_option(args, hint):
    return args.size or hint or 224


def mobilenet_v1_options(arrays, args, labels, size_hint):
    if "conv1/kernel" not in arrays:
        raise ConvertError("no conv1/kernel: not a MobileNet V1")
    alpha = args.alpha or kernel_out(arrays, "conv1") / 32.0
    options = {"alpha": alpha, "size": size_option(args, size_hint), "scale": "symmetric"}
    dw = arrays.get("conv_dw_1/depthwise_kernel")
    if dw is not None and dw.ndim == 4 and dw.shape[3] != 1:
        options["depth_multiplier"] = int(dw.shape[3])
    if "conv_preds/kernel" in arrays:
        options["include_top"] = True
        set_classes(options, kernel_out(arrays, "conv_preds"), labels)
    return options


def mobilenet_v2_options(arrays, args, labels, size_hint):
    if "Conv1/kernel" not in arrays:
        raise ConvertError("no Conv1/kernel: not a MobileNet V2")
    alpha = args.alpha
    if alpha is None:
        seen = {l: kernel_out(arrays, l) for l in v2_filters(1.0) if kernel_out(arrays, l)}
        fits = [a for a in V2_ALPHAS if all(v2_filters(a)[l] == n for l, n in seen.items())]
        if not fits:
            raise ConvertError(f"cannot tell MobileNet V2's alpha from the filter counts "
                               f"{json.dumps(seen)} (tried {list(V2_ALPHAS)}); pass --alpha")
        alpha = fits[0]
    options = {"alpha": alpha, "size": size_option(args, size_hint), "scale": "symmetric"}
    if "Logits/kernel" in arrays:
        options["include_top"] = True
        set_classes(options, kernel_out(arrays, "Logits"), labels)
    return options


def vgg16_options(arrays, args, labels, size_hint):
    options = {"scale": "caffe"}
    fc1 = arrays.get("fc1/kernel")
    if fc1 is not None:
        # Flatten feeds fc1 (size/32)^2 * 512 values, so fc1 fixes the input size.
        side = int(round((fc1.shape[0] / 512) ** 0.5)) if fc1.ndim == 2 else 7
        options["size"] = args.size or side * 32
        options["include_top"] = True
        set_classes(options, kernel_out(arrays, "predictions"), labels)
    else:
        options["size"] = size_option(args, size_hint)
    return options


OPTIONS = {"mobilenet_v1": mobilenet_v1_options, "mobilenet_v2": mobilenet_v2_options,
           "vgg16": vgg16_options}


def check_arch(arch):
    if arch is not None and arch not in ARCHITECTURES:
        raise ConvertError(f"--arch: unknown architecture '{arch}' (supported: "
                           f"{', '.join(ARCHITECTURES)})")


# ---- Keras .h5 --------------------------------------------------------------------------

def texts(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_keras_h5(path):
    """{fer name: array}, {fer name: h5 path}, the layer names in order and the model
    config (JSON, full-model files only)."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    try:
        import h5py
    except ImportError:
        raise ConvertError("--from keras needs h5py (Debian: python3-h5py)")
    if not h5py.is_hdf5(path):
        raise ConvertError(f"{path}: not an HDF5 file (expected a Keras .h5 written by "
                           "model.save_weights() or model.save())")
    with h5py.File(path, "r") as f:
        # model.save() puts the weights under "model_weights"; save_weights() at the root.
        root = f["model_weights"] if "model_weights" in f else f
        config = f.attrs.get("model_config")
        if "layer_names" not in root.attrs:
            hint = (" (a Keras 3 '.weights.h5'? save with tf.keras / Keras 2 as .h5)"
                    if "layers" in f or "_layer_checkpoint_dependencies" in f else "")
            raise ConvertError(f"{path}: no 'layer_names' attribute: not a Keras weights file{hint}")
        arrays, sources, layer_names = {}, {}, texts(root.attrs["layer_names"])
        for layer in layer_names:
            if layer not in root:
                raise ConvertError(f"{path}: layer '{layer}' is listed in layer_names but has no group")
            group = root[layer]
            for wname in texts(group.attrs.get("weight_names", [])):
                if wname not in group or not isinstance(group[wname], h5py.Dataset):
                    raise ConvertError(f"{path}: layer '{layer}': weight '{wname}' is listed "
                                       "but not stored")
                # "conv1/kernel:0" (or "model/conv1/kernel:0") -> "conv1/kernel".
                key = strip_suffix(f"{layer}/{wname.split('/')[-1]}")
                if key in arrays:
                    raise ConvertError(f"{path}: two weights map to {key} ({sources[key]}, "
                                       f"{layer}/{wname})")
                arrays[key] = float_array(group[wname][()], f"{path}: {layer}/{wname}")
                sources[key] = f"{layer}/{wname}"
    if config is not None:
        try:
            config = json.loads(config.decode("utf8") if isinstance(config, bytes) else config)
        except ValueError as e:
            raise ConvertError(f"{path}: model_config is not JSON: {e}")
    return arrays, sources, layer_names, config


def detect_arch(names):
    names = set(names)
    if "conv_pw_13" in names or "conv_pw_13_bn" in names:
        return "mobilenet_v1"
    if "block_16_project" in names or "Conv_1" in names:
        return "mobilenet_v2"
    if "block5_conv3" in names:
        return "vgg16"
    return None


def keras_config_hints(config):
    """(input size, BatchNorm epsilon) from a full-model file's model_config, or Nones."""
    if not config:
        return None, None
    try:
        layers = keras_layers(config)
    except (KeyError, TypeError):
        return None, None
    size, epsilon = None, None
    for l in layers:
        c = l.get("config", {})
        shape = c.get("batch_input_shape") or c.get("batch_shape")
        if l.get("class_name") == "InputLayer" and shape and len(shape) == 4 and shape[1]:
            size = shape[1]
        if l.get("class_name") == "BatchNormalization" and epsilon is None:
            epsilon = c.get("epsilon")
    return size, epsilon


def convert_keras(args, labels):
    arrays, sources, layer_names, config = read_keras_h5(args.src)
    arch = args.arch or detect_arch(layer_names)
    if arch is None:
        shown = ", ".join(layer_names[:6]) + (", ..." if len(layer_names) > 6 else "")
        raise ConvertError(f"{args.src}: cannot tell the architecture from its layers ({shown}); "
                           f"supported: {', '.join(ARCHITECTURES)} (or pass --arch)")
    if arch == "mobilenet_v2" and "predictions/kernel" in arrays and "Logits/kernel" not in arrays:
        for what in ("kernel", "bias"):  # newer Keras names V2's classifier "predictions"
            if f"predictions/{what}" in arrays:
                arrays[f"Logits/{what}"] = arrays.pop(f"predictions/{what}")
                sources[f"Logits/{what}"] = sources.pop(f"predictions/{what}")
    size_hint, epsilon = keras_config_hints(config)
    try:
        options = OPTIONS[arch](arrays, args, labels, size_hint)
    except ConvertError as e:
        raise ConvertError(f"{args.src}: {arch}: {e}")
    if epsilon is not None and abs(epsilon - 1e-3) > 1e-9 and arch != "vgg16":
        options["bn_epsilon"] = epsilon
    return arch, options, arrays, sources


# ---- PyTorch (torchvision mobilenet_v2) --------------------------------------------------

def torchvision_mobilenet_v2_names():
    """torchvision module path -> (fer layer, kind), kind: conv | depthwise | bn | dense."""
    m = {"features.0.0": ("Conv1", "conv"), "features.0.1": ("bn_Conv1", "bn")}
    for i in range(1, 18):  # features.1 .. 17 are fer's expanded_conv, block_1 .. block_16
        p = f"features.{i}.conv"
        if i == 1:  # expansion 1: no expand conv
            m.update({f"{p}.0.0": ("expanded_conv_depthwise", "depthwise"),
                      f"{p}.0.1": ("expanded_conv_depthwise_BN", "bn"),
                      f"{p}.1": ("expanded_conv_project", "conv"),
                      f"{p}.2": ("expanded_conv_project_BN", "bn")})
        else:
            b = f"block_{i - 1}_"
            m.update({f"{p}.0.0": (b + "expand", "conv"), f"{p}.0.1": (b + "expand_BN", "bn"),
                      f"{p}.1.0": (b + "depthwise", "depthwise"),
                      f"{p}.1.1": (b + "depthwise_BN", "bn"),
                      f"{p}.2": (b + "project", "conv"), f"{p}.3": (b + "project_BN", "bn")})
    m["features.18.0"] = ("Conv_1", "conv")
    m["features.18.1"] = ("Conv_1_bn", "bn")
    m["classifier.1"] = ("Logits", "dense")
    return m


# torch parameter -> (fer parameter, transpose to Keras's layout, expected torch rank)
TORCH_PARAMS = {
    "conv": {"weight": ("kernel", (2, 3, 1, 0), 4)},       # [out, in, kh, kw] -> [kh, kw, in, out]
    "depthwise": {"weight": ("depthwise_kernel", (2, 3, 0, 1), 4)},  # [C, 1, kh, kw] -> [kh, kw, C, 1]
    "dense": {"weight": ("kernel", (1, 0), 2), "bias": ("bias", None, 1)},  # [out, in] -> [in, out]
    "bn": {"weight": ("gamma", None, 1), "bias": ("beta", None, 1),
           "running_mean": ("moving_mean", None, 1), "running_var": ("moving_variance", None, 1)},
}


def load_torch_state(path):
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    # What is plainly not a torch.save file fails before the (slow) import of torch.
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        raise ConvertError(f"{path}: damaged or truncated zip archive (torch.save's format): "
                           "no end-of-central-directory record")
    if magic[:2] != b"PK" and magic[:1] != b"\x80":
        raise ConvertError(f"{path}: not a PyTorch file (torch.save writes a zip archive)")
    try:
        import torch
    except ImportError:
        raise ConvertError("--from torch needs PyTorch (Debian: python3-torch)")
    try:
        # A pickled whole model imports its classes (torchvision's) while loading.
        obj = torch.load(path, map_location="cpu")
    except Exception as e:
        if magic == b"PK\x03\x04":
            what = "damaged or truncated zip archive (torch.save's format)"
        elif magic[:1] == b"\x80":
            what = "damaged pickle (torch.save's legacy format)"
        else:
            what = "not a PyTorch file (torch.save writes a zip archive)"
        raise ConvertError(f"{path}: {what}: {one_line(e)[:200]}")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: holds a {type(obj).__name__}, expected a state dict or a model")
    state = {}
    for k, v in obj.items():
        if not torch.is_tensor(v):
            raise ConvertError(f"{path}: entry '{k}' is a {type(v).__name__}, not a tensor "
                               "(expected a state dict)")
        state[k[len("module."):] if k.startswith("module.") else k] = v  # DataParallel
    return state


def convert_torch(args, labels):
    arch = args.arch or "mobilenet_v2"
    if arch != "mobilenet_v2":
        raise ConvertError(f"--from torch: only torchvision's mobilenet_v2 is supported, not {arch}")
    state = load_torch_state(args.src)
    import torch  # loaded by load_torch_state
    if "features.18.0.weight" not in state:
        shown = ", ".join(list(state)[:4])
        raise ConvertError(f"{args.src}: not a torchvision mobilenet_v2 (no features.18.0.weight; "
                           f"keys: {shown}{', ...' if len(state) > 4 else ''})")
    names = torchvision_mobilenet_v2_names()
    arrays, unexpected = {}, []
    # Every fer name with its torch key, so that fer's complaints can name the source too.
    sources = {f"{layer}/{fer_param}": f"{module}.{param}"
               for module, (layer, kind) in names.items()
               for param, (fer_param, _, _) in TORCH_PARAMS[kind].items()}
    for key, t in state.items():
        module, _, param = key.rpartition(".")
        if param == "num_batches_tracked":
            continue
        if module not in names or param not in TORCH_PARAMS[names[module][1]]:
            unexpected.append(key)
            continue
        layer, kind = names[module]
        fer_param, axes, rank = TORCH_PARAMS[kind][param]
        where = f"{args.src}: {key} {list(t.shape)}"
        if t.is_complex() or not t.is_floating_point():
            raise ConvertError(f"{where}: dtype {str(t.dtype).replace('torch.', '')}, expected "
                               "real floating point")
        if t.dim() != rank or (kind == "depthwise" and t.shape[1] != 1):
            want = "[C, 1, kh, kw]" if kind == "depthwise" else f"{rank}-D"
            raise ConvertError(f"{where}: expected a {want} tensor for {layer}/{fer_param}")
        a = t.detach().to(torch.float64).cpu().numpy()
        arrays[f"{layer}/{fer_param}"] = float_array(a.transpose(axes) if axes else a, where)
    if unexpected:
        raise ConvertError(f"{args.src}: {len(unexpected)} entries that torchvision's mobilenet_v2 "
                           f"does not have: {', '.join(unexpected[:6])}"
                           f"{', ...' if len(unexpected) > 6 else ''}")
    try:
        options = mobilenet_v2_options(arrays, args, labels, None)
    except ConvertError as e:
        raise ConvertError(f"{args.src}: {e}")
    # As PyTorch computes: symmetric padding, its BatchNorm epsilon (momentum 0.1 in its
    # convention is Keras's 0.9) and torchvision's input normalization.
    options.update({"padding": "torch", "bn_epsilon": 1e-5, "bn_momentum": 0.9, "scale": "torch"})
    return arch, options, arrays, sources


# ---- check with fer -------------------------------------------------------------------

def find_fer():
    here = os.path.dirname(os.path.abspath(__file__))
    for p in (os.environ.get("FER_BINARY"), os.path.join(here, "..", "build", "fer")):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def backbone_only(message):
    """True when fer's load error lists only the (absent) FER head's arrays as missing --
    what a file without the classifier is expected to lack."""
    if "unexpected (" in message or "shape mismatch (" in message:
        return False
    m = re.search(r"; missing \((\d+)\): ([^;]*)$", message)
    if not m or m.group(2).endswith("..."):
        return False
    return all(n.startswith(("predictions/", "head_")) for n in m.group(2).split(", "))


def fer_check(tmp, src, options, sources):
    """Loads the written file with fer (`fer summary`), which checks every name and shape
    against the architecture it builds. Raises with fer's message, the temp path replaced
    by the source's and fer's names annotated with the source's."""
    fer = find_fer()
    if fer is None:
        print("convert_weights.py: note: fer binary not found (set FER_BINARY); the file is "
              "not checked here, fer checks it on load", file=sys.stderr)
        return
    r = subprocess.run([fer, "summary", "--model", tmp], capture_output=True, text=True)
    if r.returncode == 0:
        return
    lines = r.stderr.strip().splitlines() or ["(no message)"]
    message = lines[-1].replace(tmp, src)
    message = re.sub(r"^fer summary: error: ", "", message)
    if not options.get("include_top") and backbone_only(message):
        print("convert_weights.py: note: no classifier in the source: the file holds the "
              "backbone only, for `fer train --weights OUT --skip-mismatched`", file=sys.stderr)
        return
    named = [f"{k} = {v}" for k, v in sources.items() if k != v and k in message]
    if named:
        message += " [source names: " + ", ".join(named[:6]) + (", ..." if len(named) > 6 else "") + "]"
    raise ConvertError(message)


# ---- main -----------------------------------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line and status 1, like every other error here
        print(f"convert_weights.py: {message} (see --help)", file=sys.stderr)
        sys.exit(1)


def main(argv=None):
    ap = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", required=True, choices=["tfjs", "keras", "torch"])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--arch", help="mobilenet_v1 | mobilenet_v2 | vgg16 (read from the layer names "
                                   "when left out)")
    ap.add_argument("--alpha", type=float, help="width multiplier (read from the filter counts "
                                                "when left out)")
    ap.add_argument("--size", type=int, help="input size in pixels (default: the file's, else 224)")
    ap.add_argument("--labels", help="JSON file with the class names (a list, or {'labels': [...]})")
    args = ap.parse_args(argv)
    try:
        check_arch(args.arch)
        if args.alpha is not None and args.alpha <= 0:
            raise ConvertError(f"--alpha must be > 0, got {args.alpha}")
        if args.size is not None and args.size < 32:
            raise ConvertError(f"--size must be >= 32, got {args.size}")
        labels = None
        if args.labels:
            with open(args.labels) as f:
                j = json.load(f)
            labels = j["labels"] if isinstance(j, dict) else j
        if args.source == "tfjs":
            name, options, arrays, sources = convert_tfjs(args.src, labels)
            if args.size:
                options["size"] = args.size
        elif args.source == "keras":
            name, options, arrays, sources = convert_keras(args, labels)
        else:
            name, options, arrays, sources = convert_torch(args, labels)
        write_model(args.out, arrays, name, options,
                    check=lambda tmp: fer_check(tmp, args.src, options, sources))
    except ConvertError as e:
        print(f"convert_weights.py: {one_line(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # anything else is still one line, never a traceback
        print(f"convert_weights.py: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {name} {json.dumps({k: v for k, v in options.items() if k != 'classes'})}, "
          f"{len(arrays)} arrays, {sum(a.size for a in arrays.values()):,} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
