#include "data/batch_loader.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "fer/error.h"
#include "fer/rng.h"

namespace fer::data {

namespace {

// Combines two numbers into a well-mixed seed (the splitmix64 finalizer), so that
// neighbouring (epoch, index) pairs get unrelated random streams.
uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Separate streams for shuffling and augmentation, so that turning augmentation on or
// off does not change the epoch order.
constexpr uint64_t kShuffleStream = 0x5348554646ull;  // "SHUFF"
constexpr uint64_t kAugmentStream = 0x4155474dull;    // "AUGM"

}  // namespace

BatchLoader::BatchLoader(const Dataset& dataset, Preprocess preprocess, Augment augment,
                         int batch_size, bool shuffle, uint64_t seed, int workers, bool drop_last)
    : dataset_(dataset),
      preprocess_(std::move(preprocess)),
      augment_(augment),
      batch_size_(batch_size),
      shuffle_(shuffle),
      seed_(seed),
      drop_last_(drop_last) {
  preprocess_.check();
  augment_.check();
  FER_CHECK(batch_size > 0, "BatchLoader: batch_size must be > 0, got ", batch_size);
  FER_CHECK(workers >= 0, "BatchLoader: workers must be >= 0, got ", workers);
  FER_CHECK(dataset.size() > 0, "BatchLoader: the dataset is empty");
  FER_CHECK(dataset.labels.size() == dataset.images.size(), "BatchLoader: dataset has ",
            dataset.images.size(), " images but ", dataset.labels.size(), " labels");
  const int64_t n = static_cast<int64_t>(dataset.size());
  num_batches_ = drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
  FER_CHECK(num_batches_ > 0, "BatchLoader: drop_last with batch_size ", batch_size,
            " leaves no batch of the ", n, " examples");
  window_ = workers + 2;
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  // Each worker finishes at most the batch it is building (milliseconds), then exits.
  for (std::thread& t : threads_) t.join();
}

int64_t BatchLoader::batches_per_epoch() const { return num_batches_; }

void BatchLoader::start_epoch(int epoch) {
  std::vector<int64_t> order(dataset_.size());
  std::iota(order.begin(), order.end(), 0);
  if (shuffle_) {  // Fisher-Yates, seeded by (seed, epoch) only
    Rng rng(mix(mix(seed_, kShuffleStream), static_cast<uint64_t>(epoch)));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    order_ = std::move(order);
    epoch_ = epoch;
    ++generation_;  // batches still being built for the old epoch will be thrown away
    ready_.clear();
    next_to_build_ = 0;
    next_to_deliver_ = 0;
    started_ = true;
  }
  work_cv_.notify_all();
}

std::vector<int64_t> BatchLoader::batch_indices(int64_t batch_index) const {
  const int64_t begin = batch_index * batch_size_;
  const int64_t end = std::min<int64_t>(begin + batch_size_, static_cast<int64_t>(order_.size()));
  return std::vector<int64_t>(order_.begin() + begin, order_.begin() + end);
}

Batch BatchLoader::build_batch(const std::vector<int64_t>& indices, int epoch) const {
  const int64_t per_example = static_cast<int64_t>(preprocess_.height) * preprocess_.width *
                              preprocess_.channels;
  Batch batch;
  batch.images = Tensor({static_cast<int64_t>(indices.size()), preprocess_.height,
                         preprocess_.width, preprocess_.channels});
  batch.indices = indices;
  for (size_t k = 0; k < indices.size(); ++k) {
    const int64_t index = indices[k];
    const Image& image = dataset_.images[index];
    float* out = batch.images.data() + static_cast<int64_t>(k) * per_example;
    try {
      if (augment_.enabled()) {
        // Seeded by the example, not by the batch or thread: the same example in the same
        // epoch is augmented the same way however the work was split.
        Rng rng(mix(mix(mix(seed_, kAugmentStream), static_cast<uint64_t>(epoch)),
                    static_cast<uint64_t>(index)));
        augment_and_preprocess(image, augment_, preprocess_, rng, out);
      } else {
        preprocess(image, preprocess_, out);
      }
    } catch (const Error& e) {
      fail("example ", index,
           index < static_cast<int64_t>(dataset_.sources.size()) ? " (" + dataset_.sources[index] + ")"
                                                                 : std::string(),
           ": ", e.what());
    }
    batch.labels.push_back(dataset_.labels[index]);
  }
  return batch;
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    // Wait for a batch that is in this epoch and inside the window ahead of the consumer.
    work_cv_.wait(lock, [this] {
      return stop_ || (started_ && next_to_build_ < num_batches_ &&
                       next_to_build_ < next_to_deliver_ + window_);
    });
    if (stop_) return;
    const int64_t b = next_to_build_++;
    const uint64_t generation = generation_;
    const int epoch = epoch_;
    const std::vector<int64_t> indices = batch_indices(b);
    lock.unlock();

    Slot slot;  // built without the lock: the slow part runs in parallel
    try {
      slot.batch = build_batch(indices, epoch);
    } catch (...) {
      slot.error = std::current_exception();  // handed to the consumer by next()
    }

    lock.lock();
    if (generation == generation_ && !stop_) {
      ready_[b] = std::move(slot);
      ready_cv_.notify_all();
    }
  }
}

bool BatchLoader::next(Batch& out) {
  std::unique_lock<std::mutex> lock(mutex_);
  FER_CHECK(started_, "BatchLoader: call start_epoch(epoch) before next()");
  if (next_to_deliver_ >= num_batches_) return false;  // the epoch is over
  const int64_t b = next_to_deliver_;

  Slot slot;
  if (threads_.empty()) {  // workers = 0: build it here
    const std::vector<int64_t> indices = batch_indices(b);
    ++next_to_deliver_;
    lock.unlock();
    slot.batch = build_batch(indices, epoch_);
  } else {
    ready_cv_.wait(lock, [&] { return ready_.count(b) > 0; });
    slot = std::move(ready_[b]);
    ready_.erase(b);
    ++next_to_deliver_;
    lock.unlock();
    work_cv_.notify_all();  // the window moved: one more batch may be built
  }
  if (slot.error) std::rethrow_exception(slot.error);
  out = std::move(slot.batch);
  return true;
}

}  // namespace fer::data
