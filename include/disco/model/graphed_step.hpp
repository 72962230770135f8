#pragma once
// GraphedTrainStep: ContentDisentangler<CUDA>::train_step as one CUDA graph.
//
// A training step of the 128 px model at batch 32 is ~200 GFLOP, a fraction of a
// millisecond of tensor-core work, spread over ~230 operations (202 kernel launches at batch 1,
// counted in the CPU emulation, docs/benchmarks.md); launched one by one
// from the host, launch latency dominates. The step is host-synchronization free
// (train_step_async: device-side Adam step count and clip coefficient, losses kept on the
// device), so it can be captured once and replayed with a single launch:
//
//   disco::GraphedTrainStep<> g(model);               // makes a private stream current
//   for (...) {
//     disco::PendingLosses<disco::CUDA> p = g.step(a, b);  // copies a, b in, replays
//     if (log_now) print(p.get());                         // the only host sync
//   }
//
// How it works: the first `warmup` steps run eagerly on the graph's stream (they create
// Adam's moments, tune disco's conv launch plans, pick cuDNN algorithms, set up cuBLAS); the
// next step is captured (disco::cuda::Graph, with a private allocator pool) and then
// launched; every later step
// copies the batch into the captured input tensors and replays. Replays use the addresses
// of the capture: the parameters, gradients, Adam moments and the losses tensor are the
// same storage every step, and the host step counters are advanced after each replay.
//
// Rules (what would silently break a replay is checked or documented here):
//   - a and b must keep the shape of the first step; another shape runs that step eagerly;
//   - the graph is tied to the storage of the parameters and Adam's moments and to
//     cuda::conv_settings(): before each replay these are compared with the capture's, and
//     when anything replaced them (load_checkpoint assigns new moment tensors, a settings
//     change) the graph is dropped and the step re-captured (invalidate() does it by hand);
//   - the model's on_ae_grads / on_disc_grads hooks are host code and cannot run inside a
//     graph: with a hook set, every step runs eagerly;
//   - a PendingLosses from step() is overwritten by the next replay: get() before stepping.
// If the capture fails (an operation that is not capturable), the model is restored to
// its state before that step, the step runs eagerly, and every later step stays eager;
// fallback_reason() says why.
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "disco/backend/cuda/backend.hpp"
#include "disco/backend/cuda/runtime.hpp"
#include "disco/model/content_disentangler.hpp"

namespace disco {

template <class B = CUDA>
class GraphedTrainStep {
  static_assert(std::is_same_v<B, CUDA>, "GraphedTrainStep is for ContentDisentangler<CUDA>");

 public:
  explicit GraphedTrainStep(ContentDisentangler<B>& model, int warmup = 2) : model_(model), warmup_(warmup) {
    DISCO_CHECK(warmup >= 1, "GraphedTrainStep: warmup ", warmup, " must be >= 1 (the first step allocates Adam's state)");
    prev_stream_ = cuda::get_stream();
    stream_ = cuda::create_stream();
    cuda::set_stream(stream_);
  }
  ~GraphedTrainStep() {
    try {
      graph_.reset();
      cuda::set_stream(prev_stream_);  // synchronizes stream_
    } catch (...) {
    }
    cuda::destroy_stream(stream_);
  }
  GraphedTrainStep(const GraphedTrainStep&) = delete;
  GraphedTrainStep& operator=(const GraphedTrainStep&) = delete;

  // One training step on (a, b), CUDA tensors of the model's image shape.
  PendingLosses<B> step(const Tensor<B>& a, const Tensor<B>& b) {
    const bool same_shape = in_ab_.defined() && a.shape() == shape_a_ && b.shape() == shape_b_;
    if (!fallback_reason_.empty() || model_.on_ae_grads || model_.on_disc_grads || (in_ab_.defined() && !same_shape)) {
      ++eager_steps_;
      return model_.train_step_async(a, b);
    }
    if (!in_ab_.defined()) {  // the static input the graph will read: a's images, then b's
      const bool joinable = a.dim() == 4 && b.dim() == 4 && a.dtype() == b.dtype() &&
                            std::equal(a.shape().begin() + 1, a.shape().end(), b.shape().begin() + 1);
      if (!joinable) {  // the model's checks say what is wrong
        ++eager_steps_;
        return model_.train_step_async(a, b);
      }
      shape_a_ = a.shape();
      shape_b_ = b.shape();
      Shape joined = a.shape();
      joined[0] += b.shape()[0];
      in_ab_ = Tensor<B>::empty(joined, a.dtype());
    }
    in_ab_.narrow(0, 0, shape_a_[0]).copy_(a);
    in_ab_.narrow(0, shape_a_[0], shape_b_[0]).copy_(b);
    if (graph_.ready() && (storage() != captured_storage_ || !same_settings(cuda::conv_settings(), captured_settings_)))
      invalidate();  // e.g. a checkpoint was loaded: the graph would update the old tensors
    if (graph_.ready()) {
      graph_.replay();
      model_.advance_host_step_counts(1);
      ++replays_;
      return losses_;
    }
    if (steps_before_capture_ < warmup_) {
      ++steps_before_capture_;
      ++eager_steps_;
      return model_.train_step_joined_async(in_ab_, shape_a_[0]);
    }
    return capture_and_run();
  }

  // Drop the graph; the next step warms up (one eager step) and captures again.
  void invalidate() {
    graph_.reset();
    losses_ = PendingLosses<B>();
    steps_before_capture_ = warmup_ - 1;
  }

  bool graph_ready() const { return graph_.ready(); }
  std::size_t graph_nodes() const { return graph_.num_nodes(); }
  int64_t replays() const { return replays_; }
  int64_t eager_steps() const { return eager_steps_; }
  // Empty while graphs are in use; else why every step now runs eagerly.
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  PendingLosses<B> capture_and_run() {
    // Host-side state a failed capture must restore (the captured work itself never ran).
    const int64_t step = model_.step(), ae_steps = model_.ae_optimizer().step_count(),
                  disc_steps = model_.disc_optimizer().step_count();
    PendingLosses<B> captured;
    try {
      graph_.begin_capture();
      captured = model_.train_step_joined_async(in_ab_, shape_a_[0]);
      graph_.end_capture();
    } catch (const Error& e) {
      graph_.abort_capture();
      graph_.reset();
      fallback_reason_ = e.what();
      model_.set_step(step);
      model_.ae_optimizer().set_step_count(ae_steps);
      model_.disc_optimizer().set_step_count(disc_steps);
      ++eager_steps_;
      return model_.train_step_joined_async(in_ab_, shape_a_[0]);
    }
    captured_storage_ = storage();
    captured_settings_ = cuda::conv_settings();
    // The capture recorded the step (and advanced the host counters once); run it.
    graph_.replay();
    ++replays_;
    losses_ = captured;
    return losses_;
  }

  // Addresses the graph reads and writes besides its own pool: parameters and Adam moments.
  // Checked before every replay, so no names are built: the optimizers hold every parameter.
  std::vector<const void*> storage() const {
    std::vector<const void*> v;
    for (auto* opt : {&model_.ae_optimizer(), &model_.disc_optimizer()})
      for (std::size_t i = 0; i < opt->params().size(); ++i) {
        v.push_back(opt->params()[i].raw_data());
        v.push_back(opt->exp_avg(i).defined() ? opt->exp_avg(i).raw_data() : nullptr);
        v.push_back(opt->exp_avg_sq(i).defined() ? opt->exp_avg_sq(i).raw_data() : nullptr);
      }
    return v;
  }
  static bool same_settings(const cuda::ConvSettings& x, const cuda::ConvSettings& y) {
    return x.algo == y.algo && x.mode == y.mode;
  }

  ContentDisentangler<B>& model_;
  int warmup_;
  std::vector<const void*> captured_storage_;
  cuda::ConvSettings captured_settings_;
  void* prev_stream_ = nullptr;
  void* stream_ = nullptr;
  cuda::Graph graph_;
  Tensor<B> in_ab_;  // the captured input: a's images, then b's
  Shape shape_a_, shape_b_;
  PendingLosses<B> losses_;
  int steps_before_capture_ = 0;
  int64_t replays_ = 0, eager_steps_ = 0;
  std::string fallback_reason_;
};

}  // namespace disco
