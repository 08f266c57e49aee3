#include "fer/cli_model_flags.h"

#include <sstream>

#include "fer/error.h"

namespace fer::cli {

std::vector<FlagSpec> model_option_flags() {
  return {
      {"size", "PX", "input size in pixels (cnn3: 48; ImageNet models: 224)"},
      {"channels", "C", "input channels: 1 (gray) or 3 (gray replicated to RGB)"},
      {"alpha", "A", "MobileNet width multiplier (default 1.0)"},
      {"depth-multiplier", "M", "MobileNet V1 depthwise depth multiplier (default 1)"},
      {"include-top", "", "keep Keras's ImageNet classifier instead of a FER head"},
      {"head", "NAME", "FER head: gap (default) | mlp | flatten"},
      {"head-convs", "K:F,...", "convs before the head's pooling, e.g. 1:32,3:64,1:128"},
      {"head-units", "U,...", "hidden Dense sizes of the mlp head (default 256,512)"},
      {"dropout", "X", "dropout before the classifier"},
      {"bn-momentum", "X", "BatchNorm running-statistics momentum (Keras: 0.99)"},
      {"padding", "MODE", "same (TensorFlow, default) | torch (symmetric, for torch weights)"},
  };
}

namespace {
std::vector<int> parse_ints(const std::string& flag, const std::string& text, char sep) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, sep)) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    FER_CHECK(!item.empty() && end && *end == '\0' && v > 0, "--", flag,
              ": expected positive integers, got '", text, "'");
    out.push_back(static_cast<int>(v));
  }
  FER_CHECK(!out.empty(), "--", flag, ": empty list");
  return out;
}
}  // namespace

void read_model_options(const Args& args, Json& o) {
  if (args.has("size")) o["size"] = args.integer("size", 0);
  if (args.has("channels")) o["channels"] = args.integer("channels", 3);
  if (args.has("alpha")) o["alpha"] = args.number("alpha", 1.0);
  if (args.has("depth-multiplier")) o["depth_multiplier"] = args.integer("depth-multiplier", 1);
  if (args.flag("include-top")) o["include_top"] = true;
  if (args.has("head")) o["head"] = args.str("head");
  if (args.has("dropout")) o["dropout"] = args.number("dropout", 0.5);
  if (args.has("bn-momentum")) o["bn_momentum"] = args.number("bn-momentum", 0.99);
  if (args.has("padding")) o["padding"] = args.str("padding");
  if (args.has("head-units"))
    o["head_units"] = Json::array_of(parse_ints("head-units", args.str("head-units"), ','));
  if (args.has("head-convs")) {
    Json convs = Json::array();
    std::stringstream ss(args.str("head-convs"));
    std::string item;
    while (std::getline(ss, item, ',')) {
      const std::vector<int> kf = parse_ints("head-convs", item, ':');
      FER_CHECK(kf.size() == 2, "--head-convs: expected KERNEL:FILTERS items such as 1:32,3:64, "
                "got '", args.str("head-convs"), "'");
      convs.push_back(Json::array_of(kf));
    }
    o["head_convs"] = convs;
  }
}

}  // namespace fer::cli
