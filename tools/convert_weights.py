#!/usr/bin/env python3
"""Convert ImageNet weights from other frameworks into a fer model file (.npz).

    convert_weights.py --from tfjs  DIR_WITH_model.json   OUT.npz
    convert_weights.py --from keras WEIGHTS.h5 OUT.npz --arch mobilenet_v2 [--alpha 1.0]
    convert_weights.py --from torch STATE_DICT.pth OUT.npz [--arch mobilenet_v2]

The output is a complete fer model: one float32 array per parameter under fer's (Keras's)
names -- "conv_dw_1/depthwise_kernel", "conv_pw_1_bn/moving_mean", ... -- and the entry
"architecture": {"name": ..., "options": {...}} that fer expands into the full layer tree
(fer/architectures.h), with the class names and preprocessing. `fer predict`, `fer infer`,
`fer eval` and `fer train --weights` use it directly.

Layouts: fer stores Keras's layouts (Conv2D [kh, kw, in, out], DepthwiseConv2D
[kh, kw, in, multiplier], Dense [in, out]), so TF.js and Keras arrays are copied as they
are, and PyTorch's are transposed.

Every shape is checked against the architecture fer will build (via `fer summary`, when
the fer binary is found) so that a bad source fails here, naming the array, and not later.
Needs numpy; h5py for --from keras; torch for --from torch (Debian: python3-numpy,
python3-h5py, python3-torch).
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np


class ConvertError(Exception):
    pass


# ---- output ---------------------------------------------------------------------------

def write_model(out_path, arrays, name, options):
    """Writes arrays + {"name", "options"} atomically (temp file in the same folder, then
    rename), so an interrupted conversion never leaves a half-written model behind."""
    entries = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    entries["architecture"] = np.array(json.dumps({"name": name, "options": options}))
    folder = os.path.dirname(os.path.abspath(out_path))
    fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def mobilenet_v1_options(layers, arrays, labels):
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
                               "is not supported by this converter")
    if "conv_preds" in by_name:
        options["include_top"] = True
        classes = by_name["conv_preds"]["config"]["filters"]
        if "dropout" in by_name:
            options["dropout"] = by_name["dropout"]["config"]["rate"]
        if labels is not None:
            if len(labels) != classes:
                raise ConvertError(f"{len(labels)} labels for {classes} classes")
            options["classes"] = labels
        else:
            options["num_classes"] = classes
    return options


def convert_tfjs(src, labels):
    topology, raw = read_tfjs(src)
    layers = keras_layers(topology)
    arrays = {strip_suffix(k): v for k, v in raw.items()}
    if labels is None and os.path.isfile(os.path.join(src, "metadata.json")):
        with open(os.path.join(src, "metadata.json")) as f:
            labels = json.load(f).get("labels")
    names = {l["config"]["name"] for l in layers}
    if "conv_pw_13" in names:
        return "mobilenet_v1", mobilenet_v1_options(layers, arrays, labels), arrays
    raise ConvertError(f"{src}: unrecognized architecture (supported from TF.js: Keras MobileNet V1)")


# ---- shape check against fer ----------------------------------------------------------

def find_fer():
    here = os.path.dirname(os.path.abspath(__file__))
    for p in (os.environ.get("FER_BINARY"), os.path.join(here, "..", "build", "fer")):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def fer_parameter_shapes(fer, name, options):
    """{param name: shape} of the model fer builds, from `fer summary` on a temp file."""
    import subprocess
    with tempfile.TemporaryDirectory() as d:
        probe = os.path.join(d, "probe.npz")
        np.savez(probe, architecture=np.array(json.dumps({"name": name, "options": options})))
        r = subprocess.run([fer, "summary", "--model", probe], capture_output=True,
                           text=True)
    if r.returncode != 0:
        return None
    shapes = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("["):
            shapes[parts[0]] = [int(x) for x in parts[1].strip("[]").split(",") if x.strip()]
    return shapes


def check_against_fer(arrays, name, options):
    fer = find_fer()
    if fer is None:
        print("note: fer binary not found (set FER_BINARY); shapes not checked here, "
              "fer checks them on load", file=sys.stderr)
        return
    shapes = fer_parameter_shapes(fer, name, options)
    if shapes is None:
        return
    missing = [k for k in shapes if k not in arrays]
    unexpected = [k for k in arrays if k not in shapes]
    mismatched = [f"{k} (source {list(arrays[k].shape)}, fer {shapes[k]})"
                  for k in shapes if k in arrays and list(arrays[k].shape) != shapes[k]]
    if missing or unexpected or mismatched:
        msg = []
        for what, items in (("missing", missing), ("unexpected", unexpected),
                            ("shape mismatch", mismatched)):
            if items:
                msg.append(f"{what} ({len(items)}): " + ", ".join(items[:12]) +
                           (", ..." if len(items) > 12 else ""))
        raise ConvertError(f"weights do not fit fer's {name} {json.dumps(options)[:200]}: " +
                           "; ".join(msg))


# ---- main -----------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="source", required=True, choices=["tfjs", "keras", "torch"])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--labels", help="JSON file with the class names (a list, or {'labels': [...]})")
    args = ap.parse_args(argv)
    labels = None
    if args.labels:
        with open(args.labels) as f:
            j = json.load(f)
        labels = j["labels"] if isinstance(j, dict) else j
    try:
        if args.source == "tfjs":
            name, options, arrays = convert_tfjs(args.src, labels)
        else:
            raise ConvertError(f"--from {args.source}: not implemented yet")
        check_against_fer(arrays, name, options)
        write_model(args.out, arrays, name, options)
    except (ConvertError, OSError, ValueError, KeyError) as e:
        print(f"convert_weights.py: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {name} {json.dumps({k: v for k, v in options.items() if k != 'classes'})}, "
          f"{len(arrays)} arrays, {sum(a.size for a in arrays.values()):,} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
