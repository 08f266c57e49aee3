// `fer export`: a model file for shipping -- the architecture and weights only (no
// optimizer state), optionally stored as float16 to halve its size. fer loads float16
// arrays back as float32, so the exported file is used like any other model file.
#include <cmath>
#include <cstdio>

#include "fer/cli.h"
#include "fer/cli_args.h"
#include "fer/error.h"
#include "fer/model.h"
#include "fer/npz.h"

namespace fer::cli {

int export_model(int argc, char** argv) {
  Args args("export",
            {{"model", "FILE", "model file or checkpoint (.npz) to export"},
             {"out", "FILE", "where to write the exported model (.npz)"},
             {"float16", "", "store the arrays as float16 (half the size; loaded back as float32)"}},
            argc, argv);
  if (args.help()) {
    std::printf("usage: fer export --model IN.npz --out OUT.npz [--float16]\n\n%s",
                args.usage().c_str());
    return 0;
  }
  FER_CHECK(args.has("model") && args.has("out"), "fer export: --model and --out are required");
  const std::string in = args.str("model"), out = args.str("out");
  FER_CHECK(in != out, "fer export: --out must differ from --model (", in, ")");
  Model model = Model::load(in);
  // Keep the record of where the weights came from (best.npz's epoch and val accuracy).
  std::vector<std::pair<std::string, std::string>> strings;
  const NpzArrays arrays = read_npz(in);
  if (arrays.strings.count("training")) strings.emplace_back("training", arrays.strings.at("training"));
  const bool half = args.flag("float16");
  model.save(out, {}, strings, half);

  // Check what a user will load: the file reads back, and float16 rounding stayed small.
  Model back = Model::load(out);
  std::vector<Parameter*> a = model.parameters(), b = back.parameters();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor &ta = a[i]->value, &tb = b[i]->value;  // const: read-only access
    for (int64_t j = 0; j < ta.numel(); ++j) {
      const double x = ta.data()[j], y = tb.data()[j];
      worst = std::max(worst, std::fabs(x - y) / std::max(1e-3, std::fabs(x)));
    }
  }
  std::printf("wrote %s: %lld parameters as %s, largest relative change %.2g\n", out.c_str(),
              (long long)model.parameter_count(), half ? "float16" : "float32", worst);
  return 0;
}

}  // namespace fer::cli
