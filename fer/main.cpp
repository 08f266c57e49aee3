// fer: train, evaluate and run facial-expression CNNs on a CPU.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "fer/cli.h"
#include "fer/error.h"

namespace {
const char* kUsage =
    "usage: fer <command> [flags]   (fer <command> --help for its flags)\n"
    "\n"
    "commands:\n"
    "  train    train a model (cnn3, mobilenet_v1, mobilenet_v2, vgg16) on FER2013 folders or fer2013.csv\n"
    "  eval     accuracy, per-class precision/recall/F1, confusion matrix (--tta, ensembles)\n"
    "  predict  the class of each image (the emotion, for a FER model; --tta, ensembles)\n"
    "  infer    run a model on a preprocessed NHWC .npy batch, write the logits (or --layer NAME's output) as .npy\n"
    "  summary  the layers, output shapes and parameter counts of a model\n"
    "  bench    training / inference speed of an architecture (images/s; --profile: per layer)\n"
    "  export   a model file for shipping: weights only, optionally float16\n"
    "\n"
    "predict and eval use the shipped model (models/fer2013.npz) when no --model is given.\n";
}

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "train") return fer::cli::train(argc - 2, argv + 2);
    if (command == "eval") return fer::cli::eval(argc - 2, argv + 2);
    if (command == "predict") return fer::cli::predict(argc - 2, argv + 2);
    if (command == "infer") return fer::cli::infer(argc - 2, argv + 2);
    if (command == "summary") return fer::cli::summary(argc - 2, argv + 2);
    if (command == "bench") return fer::cli::bench(argc - 2, argv + 2);
    if (command == "export") return fer::cli::export_model(argc - 2, argv + 2);
    std::fprintf(stderr, "fer: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const fer::Error& e) {
    std::fprintf(stderr, "fer %s: error: %s\n", command.c_str(), e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "fer %s: error: out of memory\n", command.c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fer %s: error: %s\n", command.c_str(), e.what());
    return 1;
  }
}
