// An MLP trained on two spirals with curvnet's C++ API: data, model, loss, optimiser.
#include <cstdio>

#include "data/dataset.h"
#include "layers/model.h"
#include "optim/optimizer.h"

int main() {
  cn::DataConfig data;
  data.dataset = "spirals";
  data.n_samples = 1000;
  const cn::Splits splits = cn::load_splits(data, /*seed=*/1);
  const cn::Dataset& train = splits.train;

  cn::ModelConfig mc;
  mc.hidden = {64, 64};
  mc.activation = cn::LayerKind::tanh;
  mc.init = cn::Init::xavier_normal;
  cn::Sequential<float> model(cn::resolve_layers(mc, train.n_outputs), train.d);
  model.initialize(mc, /*seed=*/1);
  model.reserve(train.n);

  cn::Loss<float> loss(cn::LossKind::cross_entropy);
  loss.reserve(cn::Device::cpu, train.n, train.n_outputs);
  cn::OptimConfig oc;
  oc.lr = 1e-2;
  auto adam = cn::make_optimizer<float>(oc, model.layout());

  const std::vector<float> x(train.x.begin(), train.x.end()), y(train.y.begin(), train.y.end());
  cn::PassCtx ctx;                              // CPU, training mode
  for (int64_t step = 0; step < 500; ++step) {  // full-batch Adam
    const float* z = model.forward(ctx, x.data(), train.n);
    const double l = loss.forward_backward(ctx, z, y.data(), train.n, train.n_outputs);
    model.backward(ctx, loss.dz(), train.n);
    adam->step(model.params().data(), model.grads().data(), oc.lr, step);
    if (step % 100 == 0) std::printf("step %3lld  loss %.4f\n", static_cast<long long>(step), l);
  }
  const float* p = loss.probabilities();
  int64_t correct = 0;
  for (int64_t n = 0; n < train.n; ++n) correct += (p[2 * n + 1] > p[2 * n]) == (y[n] == 1.0f);
  std::printf("train accuracy %.3f\n", static_cast<double>(correct) / static_cast<double>(train.n));
  return 0;
}
