#include "fer/progress.h"

#include <unistd.h>

#include <cstdio>

namespace fer {

ProgressBar::ProgressBar(int epoch, int epochs, int64_t batches, bool quiet)
    : epoch_(epoch), epochs_(epochs), batches_(batches), quiet_(quiet),
      tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()) {}

double ProgressBar::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double ProgressBar::images_per_second() const {
  const double s = seconds();
  return s > 0 ? images_ / s : 0;
}

void ProgressBar::update(int64_t batch, double loss, double accuracy, int64_t images_done) {
  batch_ = batch;
  loss_ = loss;
  accuracy_ = accuracy;
  images_ = images_done;
  if (quiet_) return;
  if (tty_) {
    draw(false);
  } else {
    const int64_t decile = batches_ ? batch * 10 / batches_ : 0;
    if (decile != last_printed_decile_ && batch < batches_) {
      last_printed_decile_ = decile;
      draw(false);
    }
  }
}

void ProgressBar::draw(bool final_line) {
  const int width = 24;
  const int filled = batches_ ? static_cast<int>(width * batch_ / batches_) : width;
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < width) bar += '>';
  bar.resize(width, '.');
  const double ips = images_per_second();
  const double eta = batch_ > 0 ? seconds() * (batches_ - batch_) / batch_ : 0;
  std::fprintf(stderr, "%sEpoch %d/%d %5lld/%lld [%s] loss %.4f acc %.4f  %.0f img/s  %s %3.0fs",
               tty_ ? "\r" : "", epoch_, epochs_, static_cast<long long>(batch_),
               static_cast<long long>(batches_), bar.c_str(), loss_, accuracy_, ips,
               final_line ? "took" : "ETA", final_line ? seconds() : eta);
  if (!tty_ && !final_line) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void ProgressBar::finish(const std::string& summary) {
  if (quiet_) return;
  draw(true);
  std::fprintf(stderr, "  %s\n", summary.c_str());
  std::fflush(stderr);
}

}  // namespace fer
