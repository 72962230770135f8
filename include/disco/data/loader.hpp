#pragma once
// BatchLoader: background threads that prefetch training batches (a batch of
// domain A and a batch of domain B per step) so the trainer does not wait on
// decoding.
//
// Determinism: batch k is a pure function of (seed, k, dataset sizes, pipeline).
// Each domain reads an endless stream made of epoch permutations laid end to end
// (epoch e of domain d is permutation(N_d, hash(seed, d, e))); batch k takes
// positions [k * batch_size, (k + 1) * batch_size) of it, so every image is seen
// once per epoch, the two domains run through their epochs independently, and
// nothing is dropped. Flip j of batch k comes from hash(seed, d, k, j). Thread
// timing therefore never changes the data, and start_batch = k resumes exactly.
//
// Errors thrown while producing a batch (missing or corrupt file, ...) are kept
// and thrown from next() when that batch is due, as disco::Error naming the
// batch; the loader stays usable and the following call returns the next batch.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "disco/core/error.hpp"
#include "disco/data/dataset.hpp"
#include "disco/data/random.hpp"
#include "disco/data/transforms.hpp"

namespace disco {
namespace data {

struct LoaderConfig {
  int batch_size = 32;
  uint64_t seed = 0;
  int threads = 2;           // worker threads; 0 = load synchronously inside next()
  int prefetch = 4;          // most batches produced ahead of the consumer (>= 1)
  uint64_t start_batch = 0;  // index of the first batch next() returns (for resuming)
};

// One training step's data.
struct BatchPair {
  uint64_t index = 0;  // batch number
  Batch a, b;          // domain A and domain B images
};

// Which images (and flips) one domain's part of a batch uses.
struct BatchPlan {
  std::vector<size_t> indices;
  std::vector<bool> flips;
};

class BatchLoader {
 public:
  // The loader keeps the data set alive.
  BatchLoader(std::shared_ptr<const Dataset> dataset, Pipeline pipeline, LoaderConfig cfg)
      : ds_(std::move(dataset)), pipe_(pipeline), cfg_(cfg), consumer_next_(cfg.start_batch),
        claim_next_(cfg.start_batch) {
    DISCO_CHECK(ds_ != nullptr, "BatchLoader: null dataset");
    DISCO_CHECK(cfg_.batch_size > 0, "BatchLoader: batch_size must be positive, got ", cfg_.batch_size);
    DISCO_CHECK(cfg_.threads >= 0, "BatchLoader: threads must be >= 0, got ", cfg_.threads);
    DISCO_CHECK(cfg_.prefetch >= 1, "BatchLoader: prefetch must be >= 1, got ", cfg_.prefetch);
    pipe_.validate();
    for (Domain d : {Domain::A, Domain::B}) {
      const size_t n = ds_->size(d);
      DISCO_CHECK(n > 0 && n <= 0xFFFFFFFFull, "BatchLoader: domain ", domain_name(d), " of ", ds_->describe(),
                  " has ", n, " images");
      sizes_[static_cast<int>(d)] = n;
    }
    workers_.reserve(cfg_.threads);
    try {
      for (int t = 0; t < cfg_.threads; ++t) workers_.emplace_back([this] { work(); });
    } catch (const std::exception& e) {  // e.g. the system refused a thread: stop the others
      shutdown();
      fail("BatchLoader: cannot start ", cfg_.threads, " worker threads: ", e.what());
    }
  }

  // The caller keeps `dataset` alive for the loader's lifetime.
  BatchLoader(const Dataset& dataset, Pipeline pipeline, LoaderConfig cfg)
      : BatchLoader(std::shared_ptr<const Dataset>(&dataset, [](const Dataset*) {}), pipeline, cfg) {}

  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Stops the workers (each finishes the batch it is on) and joins them.
  ~BatchLoader() { shutdown(); }

  // The next batch pair, in order start_batch, start_batch + 1, ...
  // Throws disco::Error when producing that batch failed.
  BatchPair next() {
    if (workers_.empty()) {
      const uint64_t k = consumer_next_++;
      return wrap_errors(k, [&] { return produce(k); });
    }
    Slot slot;
    uint64_t k;
    {
      std::unique_lock<std::mutex> lock(mu_);
      k = consumer_next_;
      ready_cv_.wait(lock, [&] { return ready_.count(k) > 0; });
      slot = std::move(ready_[k]);
      ready_.erase(k);
      ++consumer_next_;
    }
    work_cv_.notify_all();
    if (slot.error) return wrap_errors(k, [&]() -> BatchPair { std::rethrow_exception(slot.error); });
    return std::move(slot.pair);
  }

  // Index of the batch the next call to next() returns (save it to resume).
  uint64_t next_index() const {
    std::lock_guard<std::mutex> lock(mu_);
    return consumer_next_;
  }

  // Images and flips of domain d in batch k (computed, nothing is loaded).
  BatchPlan plan(uint64_t k, Domain d) const {
    const int di = static_cast<int>(d);
    const uint64_t n = sizes_[di], bs = static_cast<uint64_t>(cfg_.batch_size);
    BatchPlan p;
    p.indices.resize(cfg_.batch_size);
    p.flips.resize(cfg_.batch_size);
    std::shared_ptr<const std::vector<uint32_t>> perm;
    uint64_t perm_epoch = ~0ull;
    for (uint64_t j = 0; j < bs; ++j) {
      const uint64_t pos = k * bs + j, epoch = pos / n;
      if (epoch != perm_epoch) {
        perm = permutation_for(d, epoch);
        perm_epoch = epoch;
      }
      p.indices[j] = (*perm)[pos % n];
      Pcg32 rng(hash_seed(cfg_.seed, 0xF11Full, static_cast<uint64_t>(di), k, j));
      p.flips[j] = pipe_.draw_flip(rng);
    }
    return p;
  }

  const LoaderConfig& config() const { return cfg_; }
  const Pipeline& pipeline() const { return pipe_; }
  const Dataset& dataset() const { return *ds_; }

 private:
  struct Slot {
    BatchPair pair;
    std::exception_ptr error;
  };

  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    ready_cv_.notify_all();
    for (std::thread& t : workers_)
      if (t.joinable()) t.join();
    workers_.clear();
  }

  template <class F>
  BatchPair wrap_errors(uint64_t k, F&& f) {
    try {
      return f();
    } catch (const std::exception& e) {
      fail("BatchLoader: batch ", k, " of ", ds_->describe(), ": ", e.what());
    } catch (...) {
      fail("BatchLoader: batch ", k, " of ", ds_->describe(), ": unknown exception");
    }
  }

  // Epoch permutations are shared between threads; a few recent ones are cached.
  std::shared_ptr<const std::vector<uint32_t>> permutation_for(Domain d, uint64_t epoch) const {
    const int di = static_cast<int>(d);
    {
      std::lock_guard<std::mutex> lock(perm_mu_);
      auto it = perms_[di].find(epoch);
      if (it != perms_[di].end()) return it->second;
    }
    auto p = std::make_shared<const std::vector<uint32_t>>(
        permutation(static_cast<uint32_t>(sizes_[di]), hash_seed(cfg_.seed, 0xE90Cull, static_cast<uint64_t>(di), epoch)));
    std::lock_guard<std::mutex> lock(perm_mu_);
    auto& cache = perms_[di];
    cache.emplace(epoch, p);
    while (cache.size() > 3) cache.erase(cache.begin());  // keep the latest epochs
    return p;
  }

  BatchPair produce(uint64_t k) const {
    BatchPair out;
    out.index = k;
    const Domain doms[2] = {Domain::A, Domain::B};
    for (Domain d : doms) {
      const BatchPlan p = plan(k, d);
      (d == Domain::A ? out.a : out.b) = make_batch(*ds_, d, p.indices, pipe_, &p.flips);
    }
    return out;
  }

  void work() {
    for (;;) {
      uint64_t k;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_cv_.wait(lock, [&] {
          return stop_ || claim_next_ < consumer_next_ + static_cast<uint64_t>(cfg_.prefetch);
        });
        if (stop_) return;
        k = claim_next_++;
      }
      Slot slot;
      try {
        slot.pair = produce(k);
      } catch (...) {
        slot.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        ready_[k] = std::move(slot);
      }
      ready_cv_.notify_all();
    }
  }

  std::shared_ptr<const Dataset> ds_;
  Pipeline pipe_;
  LoaderConfig cfg_;
  size_t sizes_[2] = {0, 0};

  mutable std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  bool stop_ = false;
  uint64_t consumer_next_, claim_next_;
  std::map<uint64_t, Slot> ready_;
  std::vector<std::thread> workers_;

  mutable std::mutex perm_mu_;
  mutable std::map<uint64_t, std::shared_ptr<const std::vector<uint32_t>>> perms_[2];
};

}  // namespace data
}  // namespace disco
