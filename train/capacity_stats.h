// What the capacity tools (growth, ablation, verdicts: docs/capacity.md) read from a model on
// a fixed batch: per-sample losses, each layer's input and output, and the effective rank of
// a layer's activations. Host copies in float64; the model's caches are overwritten.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/engine.h"

namespace cn {

// Effective rank of the N×U activations a (rows = samples): exp of the Shannon entropy of
// the normalised eigenvalues of their covariance (Roy & Vetterli 2007); 1..U, 0 for a
// constant layer.
double activation_effective_rank(const std::vector<double>& a, int64_t N, int64_t U);

// The loss of each sample under the engine's loss kind, from the network output z (N×C)
// and the loss-layout targets t (N×target_width): mse averages over outputs, bce_logits
// likewise, cross_entropy is −log softmax at the target class.
std::vector<double> per_sample_loss(LossKind kind, const std::vector<double>& z, const std::vector<double>& t,
                                    int64_t N, int64_t C, int64_t target_width);

// A forward pass of the first `n` training samples (file order) in evaluation mode: every
// layer's output (N×width, float64) and each sample's loss. With `backward`, also the
// gradient of the batch-mean loss at every layer's output (the parameter gradients are
// overwritten).
struct BatchView {
  int64_t n = 0;
  std::vector<double> input;                 // n × d
  std::vector<std::vector<double>> outputs;  // per layer, n × out_features
  std::vector<std::vector<double>> grads;    // per layer (with backward), n × out_features
  std::vector<double> sample_loss;           // n
  double mean_loss = 0;
};
// A run's checkpoint (resolve_checkpoint: a step_N directory or a run directory's last)
// loaded into an engine on the CPU: a grown run's model widened first (its growth.json).
template <class T>
std::unique_ptr<Engine<T>> load_checkpoint_engine(const std::string& ckpt, const Config& config);

template <class T>
BatchView view_batch(Engine<T>& e, const Dataset& d, int64_t n, bool backward);

}  // namespace cn
