// BatchLoader: turns a Dataset into a stream of preprocessed (and, for training,
// augmented) batches, prepared by background threads while the model computes.
//
//   BatchLoader loader(train, preprocess, augment, /*batch_size=*/64, /*shuffle=*/true,
//                      /*seed=*/1, /*workers=*/2);
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     Batch batch;
//     while (loader.next(batch)) { ... batch.images is [B, H, W, C] ... }
//   }
//
// Reproducibility. The epoch's order is a shuffle seeded by (seed, epoch), so a run
// resumed at epoch 7 sees the same order as one that never stopped. Each example's
// augmentation is seeded by (seed, epoch, example index), so the batches do not depend
// on how many workers there are or which one happened to build which batch, and batches
// are delivered in order.
//
// Threads. `workers` std::threads build batches into a bounded window of workers + 2
// batches ahead of the consumer (so memory stays bounded and compute never waits once
// the window is full). Workers use no OpenMP: the compute threads already own the cores.
// workers = 0 builds each batch on the calling thread inside next() (for debugging).
// Destroying the loader mid-epoch stops the workers after their current batch.
//
// The Dataset must outlive the loader (it is read, not copied).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "fer/tensor.h"

namespace fer::data {

struct Batch {
  Tensor images;                 // [B, H, W, C]; B < batch_size only for the last batch
  std::vector<int> labels;       // B labels, class indices
  std::vector<int64_t> indices;  // B dataset indices (which examples these are)
};

class BatchLoader {
 public:
  BatchLoader(const Dataset& dataset, Preprocess preprocess, Augment augment, int batch_size,
              bool shuffle, uint64_t seed, int workers = 1, bool drop_last = false);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Batches in one epoch: ceil(n / batch_size), or floor with drop_last.
  int64_t batches_per_epoch() const;
  // Starts (or restarts) epoch `epoch`: discards whatever is pending and reshuffles.
  void start_epoch(int epoch);
  // The next batch of the epoch, in order; false once the epoch is over. Rethrows an
  // error raised while building the batch (e.g. a crop larger than an image).
  bool next(Batch& out);

  // The example order of the current epoch (for tests and logs).
  const std::vector<int64_t>& epoch_order() const { return order_; }

 private:
  // One finished batch, or the error that stopped it.
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };

  // Builds one batch from dataset indices. Reads only members that never change after
  // construction, so workers call it without holding the lock.
  Batch build_batch(const std::vector<int64_t>& indices, int epoch) const;
  std::vector<int64_t> batch_indices(int64_t batch_index) const;  // under the lock
  void worker_loop();

  const Dataset& dataset_;
  Preprocess preprocess_;
  Augment augment_;
  int batch_size_;
  bool shuffle_;
  uint64_t seed_;
  bool drop_last_;
  int64_t num_batches_;
  int64_t window_;  // batches built ahead of the consumer, at most

  std::mutex mutex_;
  std::condition_variable work_cv_;   // workers wait here for batches to build
  std::condition_variable ready_cv_;  // the consumer waits here for the next batch
  std::vector<int64_t> order_;
  int epoch_ = 0;
  uint64_t generation_ = 0;  // bumped by start_epoch; stale work is thrown away
  bool started_ = false;
  bool stop_ = false;
  int64_t next_to_build_ = 0;
  int64_t next_to_deliver_ = 0;
  std::map<int64_t, Slot> ready_;  // built batches waiting for next()
  std::vector<std::thread> threads_;
};

}  // namespace fer::data
