// A Keras-style progress bar for an epoch: batch count, loss, accuracy, images/s, ETA.
// On a terminal it redraws one line; into a file or pipe it prints a line every ~10% of
// the epoch so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace fer {

class ProgressBar {
 public:
  ProgressBar(int epoch, int epochs, int64_t batches, bool quiet);
  void update(int64_t batch, double loss, double accuracy, int64_t images_done);
  // Ends the line with the epoch summary appended.
  void finish(const std::string& summary);
  double seconds() const;
  double images_per_second() const;

 private:
  void draw(bool final_line);
  int epoch_, epochs_;
  int64_t batches_, batch_ = 0, images_ = 0;
  double loss_ = 0, accuracy_ = 0;
  bool quiet_, tty_;
  int64_t last_printed_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace fer
