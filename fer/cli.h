// The `fer` command's subcommands. Each returns the process exit code; fer::Error thrown
// inside becomes one line on stderr and exit code 1 (see main.cpp).
#pragma once

#include <string>
#include <utility>

namespace fer::cli {

int train(int argc, char** argv);
int eval(int argc, char** argv);
int predict(int argc, char** argv);
int infer(int argc, char** argv);
int summary(int argc, char** argv);
int bench(int argc, char** argv);    // fer/cli_bench.cpp
int export_model(int argc, char** argv);  // fer/cli_export.cpp

// Where FER2013 is looked for when --data is not given: $FER2013_DIR, then
// ../shared/datasets/fer2013 (from the current directory, then from the source tree).
// Empty when not found.
std::string default_fer2013_dir();
// The sample of faces committed in the repository (data/sample_faces).
std::string sample_faces_dir();
// The shipped model `fer predict` and `fer eval` use without --model: $FER_MODEL, else
// models/fer2013.npz in the source tree, else next to the binary (BIN/../models or
// BIN/models). Throws naming the places looked at when there is none.
std::string default_model_path();
// Parses "--expect-size 48" or "48x48" into (height, width); (0, 0) when the flag is absent.
std::pair<int, int> parse_size(const std::string& flag, const std::string& value);
// Applies --threads (or leaves OpenMP's default: OMP_NUM_THREADS or all cores).
void set_threads(int threads);

}  // namespace fer::cli
