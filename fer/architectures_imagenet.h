// The ImageNet architectures of Keras's applications, with Keras's layer names so that
// Keras (and converted TF.js / torchvision) weights load by name, plus the heads used to
// fine-tune them on FER2013. Registered in fer/architectures.cpp as "mobilenet_v1",
// "mobilenet_v2" and "vgg16".
//
// Every one of them is Sequential(name)[ Sequential("backbone")[...], Sequential("head")[...] ]:
// `fer train --freeze-backbone` freezes the first, per-group learning rates scale it.
//
// Options (JSON keys; the CLI flags have the same names with dashes):
//   size (224), channels (3), alpha (1.0, width multiplier), depth_multiplier (1, V1 only),
//   include_top (false): Keras's own classifier (V1: GAP, Reshape, Dropout, 1x1 Conv2D
//       "conv_preds", Reshape; V2: GAP, Dense "Logits"; VGG16: Flatten, fc1, fc2,
//       "predictions") with `classes` outputs;
//   otherwise head: "gap" (GAP -> [Dropout] -> Dense), "mlp" (GAP -> Dense 256 ->
//       Dropout -> Dense 512 -> Dropout -> Dense; sizes in head_units), "flatten"
//       (Flatten -> [Dropout] -> Dense); head_convs [[k, filters], ...] adds k x k
//       Conv-BN-ReLU layers before the pooling; dropout (0 for gap/flatten, 0.5 for mlp);
//   classes / num_classes (7), bn_momentum (Keras: 0.99 for V1, 0.999 for V2),
//   bn_epsilon (1e-3; torchvision uses 1e-5), padding ("same" = TensorFlow's, or "torch":
//   symmetric ZeroPadding2D + 'valid' for stride 2, as PyTorch pads),
//   scale (preprocessing: "symmetric" for the MobileNets, "caffe" for VGG16).
#pragma once

#include "fer/json.h"

namespace fer::arch {

Json mobilenet_v1(const Json& options);
Json mobilenet_v2(const Json& options);
Json vgg16(const Json& options);

// Keras's _make_divisible: v rounded to the nearest multiple of `divisor` (at least
// divisor), never more than 10% below v. MobileNet V2 sizes every layer with it.
int make_divisible(double v, int divisor = 8);

}  // namespace fer::arch
