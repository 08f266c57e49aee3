// The convolutions of fer's own networks and the shapes they run at, read from the
// architecture registry (make_architecture + each layer's build()), so the kernel
// benchmarks follow the networks instead of a hand-copied table.
//
// Which networks: $FER_BENCH_NETWORKS
//   default  MobileNet V1 alpha 0.75 at 96 px and cnn3 at 48 px (the targets)
//   all      MobileNet V1 alpha 0.75 and MobileNet V2 alpha 1.0 at 48, 96, 128 and 224 px,
//            and cnn3 at 48 px
// Which batch sizes: $FER_BENCH_BATCHES, comma-separated (default "64,1").
// Identical shapes (MobileNet V1's five 6x6x384 blocks) are benchmarked once, under the
// name of the first layer that has them.
#pragma once

#include <cstdlib>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "fer/architectures.h"
#include "fer/json.h"
#include "fer/rng.h"
#include "kernels/padding.h"
#include "layers/layer.h"
#include "layers/registry.h"

namespace fer_bench {

struct BenchNetwork {
  std::string label;  // "mbv1_0.75_96", "mbv2_1.0_224", "cnn3_48"
  std::string model;
  fer::Json options;
};

struct ConvShape {
  std::string name;  // "<network label>/b<batch>/<layer>"
  bool depthwise = false;
  fer::kernels::Conv2DGeometry g;
  int out_channels = 0;  // filters, or C * depth_multiplier for a depthwise layer
};

inline std::vector<BenchNetwork> bench_networks() {
  const char* env = std::getenv("FER_BENCH_NETWORKS");
  const std::string which = env ? env : "default";
  auto options = [](int size, double alpha) {
    fer::Json o = fer::Json::object();
    o["size"] = size;
    if (alpha > 0) o["alpha"] = alpha;
    return o;
  };
  std::vector<BenchNetwork> out;
  if (which == "all") {
    for (int size : {48, 96, 128, 224}) {
      out.push_back({"mbv1_0.75_" + std::to_string(size), "mobilenet_v1", options(size, 0.75)});
      out.push_back({"mbv2_1.0_" + std::to_string(size), "mobilenet_v2", options(size, 1.0)});
    }
  } else {
    out.push_back({"mbv1_0.75_96", "mobilenet_v1", options(96, 0.75)});
  }
  out.push_back({"cnn3_48", "cnn3", options(48, 0)});
  return out;
}

inline std::vector<int> bench_batches() {
  const char* env = std::getenv("FER_BENCH_BATCHES");
  std::stringstream list(env ? env : "64,1");
  std::vector<int> out;
  for (std::string item; std::getline(list, item, ',');)
    if (std::atoi(item.c_str()) > 0) out.push_back(std::atoi(item.c_str()));
  return out;
}

namespace detail {

// Walks a layer description, building each leaf to learn its output shape; records the
// Conv2D and DepthwiseConv2D layers with their input shapes.
inline fer::Shape walk(const fer::Json& config, fer::Shape shape, int batch, const std::string& prefix,
                       std::vector<ConvShape>& out) {
  const std::string type = config.at("type").as_string();
  if (config.contains("layers")) {  // Sequential, Residual: the branch keeps the shape chain
    for (const fer::Json& child : config.at("layers").as_array())
      shape = walk(child, shape, batch, prefix, out);
    return shape;
  }
  fer::Rng rng(1);
  auto layer = fer::make_layer(config);
  const fer::Shape next = layer->build(shape, rng);
  if (type == "Conv2D" || type == "DepthwiseConv2D") {
    const fer::Json& k = config.at("kernel_size");
    const fer::Json& s = config.at("strides");
    ConvShape c;
    c.name = prefix + config.at("name").as_string();
    c.depthwise = type == "DepthwiseConv2D";
    c.g = fer::kernels::make_geometry(batch, shape[0], shape[1], shape[2], k[0].as_int(),
                                      k[1].as_int(), s[0].as_int(), s[1].as_int(),
                                      fer::kernels::parse_padding(config.at("padding").as_string()));
    c.out_channels = next[2];
    out.push_back(c);
  }
  return next;
}

}  // namespace detail

// Every convolution of every bench network at every bench batch size, duplicates removed.
inline std::vector<ConvShape> bench_conv_shapes() {
  std::vector<ConvShape> out;
  std::set<std::tuple<bool, int, int, int, int, int, int, int, int, int>> seen;
  for (const BenchNetwork& net : bench_networks()) {
    const fer::Json arch = fer::make_architecture(net.model, net.options);
    const fer::Json& shape = arch.at("input_shape");
    const fer::Shape input = {shape[0].as_int(), shape[1].as_int(), shape[2].as_int()};
    for (int batch : bench_batches()) {
      std::vector<ConvShape> convs;
      detail::walk(arch.at("network"), input, batch, net.label + "/b" + std::to_string(batch) + "/",
                   convs);
      for (const ConvShape& c : convs) {
        const auto key = std::make_tuple(c.depthwise, c.g.n, c.g.h, c.g.w, c.g.c, c.g.kh, c.g.kw,
                                         c.g.stride_h, c.g.stride_w, c.out_channels);
        if (seen.insert(key).second) out.push_back(c);
      }
    }
  }
  return out;
}

}  // namespace fer_bench
