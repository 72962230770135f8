// Background batch loader: determinism, epochs, resume, error forwarding, shutdown.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "disco/data/loader.hpp"
#include "disco/data/synthetic_faces.hpp"

using namespace disco::data;

namespace {

// Image i of domain d is a 6x6 horizontal ramp offset by its index, so both the
// index and a flip can be read back. Chosen indices can be made to throw.
class ToyDataset : public Dataset {
 public:
  ToyDataset(size_t na, size_t nb) : n_{na, nb} {}
  size_t size(Domain d) const override { return n_[static_cast<int>(d)]; }
  Image load(Domain d, size_t i) const override {
    check_index(d, i);
    if (d == Domain::B && i == throw_disco) disco::fail("toy: cannot read B image ", i);
    if (d == Domain::B && i == throw_std) throw std::runtime_error("toy: std failure");
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    loads.fetch_add(1);
    Image img(6, 6);
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 6; ++x)
        for (int c = 0; c < 3; ++c) img.at(x, y, c) = (static_cast<float>(i) + x / 8.0f) / (n_[static_cast<int>(d)] + 1);
    return img;
  }
  std::string item_name(Domain d, size_t i) const override { return disco::str("toy", domain_name(d), i); }
  std::string describe() const override { return "toy"; }

  size_t throw_disco = ~size_t(0), throw_std = ~size_t(0);
  int delay_ms = 0;
  mutable std::atomic<int> loads{0};

 private:
  size_t n_[2];
};

Pipeline toy_pipeline() {
  Pipeline p;
  p.crop = 0;
  p.resolution = 6;
  return p;
}

LoaderConfig cfg(int bs, int threads, uint64_t seed = 1, uint64_t start = 0) {
  LoaderConfig c;
  c.batch_size = bs;
  c.threads = threads;
  c.seed = seed;
  c.start_batch = start;
  c.prefetch = 3;
  return c;
}

}  // namespace

TEST_CASE("loader batches do not depend on thread count or timing", "[data]") {
  SyntheticConfig sc;
  sc.resolution = 32;
  sc.count_a = 10;
  sc.count_b = 7;
  auto ds = std::make_shared<SyntheticDataset>(sc);
  Pipeline p;
  p.crop = 0;
  p.resolution = 32;
  std::vector<BatchPair> ref;
  {
    BatchLoader sync(ds, p, cfg(4, 0));
    for (int k = 0; k < 6; ++k) ref.push_back(sync.next());
  }
  for (int threads : {1, 3}) {
    BatchLoader l(ds, p, cfg(4, threads));
    for (int k = 0; k < 6; ++k) {
      const BatchPair b = l.next();
      REQUIRE(b.index == static_cast<uint64_t>(k));
      REQUIRE(b.a.n == 4);
      REQUIRE(b.a.h == 32);
      REQUIRE(b.a.data == ref[k].a.data);
      REQUIRE(b.b.data == ref[k].b.data);
    }
    CHECK(l.next_index() == 6);
  }
  // another seed gives other batches
  BatchLoader other(ds, p, cfg(4, 2, 2));
  CHECK(other.next().a.data != ref[0].a.data);
}

TEST_CASE("loader walks epochs: each image once per epoch, flips as planned", "[data]") {
  auto ds = std::make_shared<ToyDataset>(10, 6);
  const Pipeline p = toy_pipeline();
  BatchLoader l(ds, p, cfg(5, 2, 7));
  // domain A (10 images): batches 0-1 are epoch 0, batches 2-3 epoch 1
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<size_t> seen;
    for (int k = 2 * epoch; k < 2 * epoch + 2; ++k)
      for (size_t i : l.plan(k, Domain::A).indices) seen.insert(i);
    REQUIRE(seen.size() == 10);
    for (size_t i = 0; i < 10; ++i) REQUIRE(seen.count(i) == 1);
  }
  CHECK(l.plan(0, Domain::A).indices != l.plan(2, Domain::A).indices);  // reshuffled
  // domain B (6 images, batch 5): positions 0-5 epoch 0, 6-11 epoch 1, spanning batches
  std::multiset<size_t> b_seen;
  for (size_t i : l.plan(0, Domain::B).indices) b_seen.insert(i);
  b_seen.insert(l.plan(1, Domain::B).indices[0]);
  for (size_t i = 0; i < 6; ++i) REQUIRE(b_seen.count(i) == 1);

  // batch content equals the plan run through the pipeline
  int flips = 0, total = 0;
  for (int k = 0; k < 8; ++k) {
    const BatchPair b = l.next();
    for (Domain d : {Domain::A, Domain::B}) {
      const BatchPlan plan = l.plan(k, d);
      const Batch& batch = d == Domain::A ? b.a : b.b;
      for (int j = 0; j < 5; ++j) {
        std::vector<float> want(p.sample_size());
        ds->get(d, plan.indices[j], p, plan.flips[j], want.data());
        REQUIRE(std::vector<float>(batch.sample(j), batch.sample(j) + p.sample_size()) == want);
        flips += plan.flips[j];
        ++total;
      }
    }
  }
  CHECK(flips > total / 5);
  CHECK(flips < total * 4 / 5);
}

TEST_CASE("loader resumes exactly from start_batch", "[data]") {
  auto ds = std::make_shared<ToyDataset>(9, 13);
  BatchLoader full(ds, toy_pipeline(), cfg(4, 2, 3));
  std::vector<BatchPair> all;
  for (int k = 0; k < 7; ++k) all.push_back(full.next());
  BatchLoader resumed(ds, toy_pipeline(), cfg(4, 2, 3, 4));
  CHECK(resumed.next_index() == 4);
  for (int k = 4; k < 7; ++k) {
    const BatchPair b = resumed.next();
    REQUIRE(b.index == static_cast<uint64_t>(k));
    REQUIRE(b.a.data == all[k].a.data);
    REQUIRE(b.b.data == all[k].b.data);
  }
}

TEST_CASE("loader forwards worker errors to the consumer and keeps going", "[data]") {
  for (int threads : {0, 2}) {
    INFO("threads " << threads);
    auto ds = std::make_shared<ToyDataset>(8, 40);
    ds->throw_disco = 5;
    ds->throw_std = 17;
    BatchLoader l(ds, toy_pipeline(), cfg(4, threads, 11));
    int errors = 0, good = 0;
    for (uint64_t k = 0; k < 10; ++k) {  // one epoch of domain B: 5 and 17 each come once
      // the first failing image of the batch decides the message
      size_t bad = ~size_t(0);
      for (size_t i : l.plan(k, Domain::B).indices)
        if (bad == ~size_t(0) && (i == 5 || i == 17)) bad = i;
      try {
        const BatchPair b = l.next();
        REQUIRE(b.index == k);
        REQUIRE(bad == ~size_t(0));
        ++good;
      } catch (const disco::Error& e) {
        const std::string msg = e.what();
        INFO(msg);
        REQUIRE(bad != ~size_t(0));
        CHECK(msg.find("batch " + std::to_string(k)) != std::string::npos);
        CHECK(msg.find(bad == 5 ? "cannot read B image 5" : "std failure") != std::string::npos);
        ++errors;
      }
    }
    CHECK(errors >= 1);
    CHECK(errors + good == 10);
    CHECK(l.next_index() == 10);
  }
}

TEST_CASE("loader shuts down cleanly and prefetches only a bounded number of batches", "[data]") {
  auto ds = std::make_shared<ToyDataset>(20, 20);
  ds->delay_ms = 2;
  {
    BatchLoader l(ds, toy_pipeline(), cfg(4, 2));
    (void)l.next();
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    // at most 1 consumed + prefetch (3) batches of 4 A and 4 B images were loaded
    CHECK(ds->loads.load() <= (1 + 3) * 8);
    CHECK(ds->loads.load() >= 8);  // batch 0 was returned
  }  // destructor joins while workers may be mid-batch
  {
    BatchLoader idle(ds, toy_pipeline(), cfg(4, 3));  // destroyed without ever calling next()
  }
  CHECK_THROWS_AS(BatchLoader(ds, toy_pipeline(), cfg(0, 1)), disco::Error);
  auto empty = std::make_shared<ToyDataset>(3, 0);
  CHECK_THROWS_WITH(BatchLoader(empty, toy_pipeline(), cfg(2, 1)), Catch::Contains("domain B"));
  // a non-owning loader over a stack data set
  ToyDataset local(5, 5);
  BatchLoader l2(local, toy_pipeline(), cfg(2, 1));
  CHECK(l2.next().a.n == 2);
}
