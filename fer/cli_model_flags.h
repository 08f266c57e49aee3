// The flags that choose and shape an architecture, shared by `fer train`, `fer summary`
// (and `fer bench`): --model NAME plus its options (--size, --alpha, --head, ...).
// They become the options JSON that make_architecture() takes (fer/architectures.h).
#pragma once

#include <vector>

#include "fer/cli_args.h"
#include "fer/json.h"

namespace fer::cli {

// The flag table entries (--size, --alpha, --depth-multiplier, --include-top, --head,
// --head-convs, --head-units, --dropout, --bn-momentum, --channels, --padding).
std::vector<FlagSpec> model_option_flags();

// Copies the given flags into `options` (only those present, so each architecture keeps
// its own defaults). --head-convs "1:32,3:64" becomes [[1, 32], [3, 64]].
void read_model_options(const Args& args, Json& options);

}  // namespace fer::cli
