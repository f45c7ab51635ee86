// _C.bandwidth_probe / _C.plain_adamw / _C.plain_sgd: the benchmark
// references of cpu/bandwidth_probe.h, on float32 addresses. Used by
// fusedoptim._bench only; the optimizers never call them.
#include <pybind11/stl.h>

#include <string>

#include "bindings/bindings.h"
#include "bindings/tensor_args.h"
#include "cpu/bandwidth_probe.h"

namespace py = pybind11;
using Addresses = std::vector<uintptr_t>;

namespace fusedoptim::bindings {
namespace {

template <typename T>
std::vector<T*> float_pointers(const Addresses& raw, const char* name,
                               const std::vector<int64_t>& numels) {
  std::vector<T*> out;
  for (void* a : addresses(raw, name, numels, ops::DType::kFloat32)) {
    out.push_back(static_cast<T*>(a));
  }
  return out;
}

void bandwidth_probe(const Addresses& inplace, uintptr_t source, int64_t n, double scale,
                     int num_threads) {
  check_threads(num_threads);
  check_finite(scale, "scale");
  if (inplace.empty() || inplace.size() > 3) {
    throw py::value_error("inplace: expected 1 to 3 arrays, got " + std::to_string(inplace.size()));
  }
  const std::vector<int64_t> numels(inplace.size() + 1, n);
  check_numels(numels);
  Addresses all = inplace;
  all.push_back(source);
  auto pointers = float_pointers<float>(all, "arrays", numels);
  const float* src = pointers.back();
  pointers.pop_back();
  py::gil_scoped_release release;
  cpu::bench::bandwidth_probe(pointers, src, n, float(scale), num_threads);
}

void plain_adamw(const std::vector<int64_t>& numels, const Addresses& params,
                 const Addresses& grads, const Addresses& exp_avgs, const Addresses& exp_avg_sqs,
                 double lr, double beta1, double beta2, double eps, double weight_decay,
                 double step, int num_threads) {
  check_threads(num_threads);
  check_numels(numels);
  for (auto [value, name] : {std::pair{lr, "lr"},
                             {beta1, "beta1"},
                             {beta2, "beta2"},
                             {eps, "eps"},
                             {weight_decay, "weight_decay"}}) {
    check_finite(value, name);
  }
  if (!(step >= 1)) throw py::value_error("step must be >= 1");
  cpu::bench::PlainAdamWArgs args{float_pointers<float>(params, "params", numels),
                                  float_pointers<const float>(grads, "grads", numels),
                                  float_pointers<float>(exp_avgs, "exp_avgs", numels),
                                  float_pointers<float>(exp_avg_sqs, "exp_avg_sqs", numels),
                                  numels,
                                  lr,
                                  beta1,
                                  beta2,
                                  eps,
                                  weight_decay,
                                  step};
  py::gil_scoped_release release;
  cpu::bench::plain_adamw(args, num_threads);
}

void plain_sgd(const std::vector<int64_t>& numels, const Addresses& params, const Addresses& grads,
               const Addresses& buffers, double lr, double momentum, int num_threads) {
  check_threads(num_threads);
  check_numels(numels);
  check_finite(lr, "lr");
  check_finite(momentum, "momentum");
  if ((momentum != 0) != !buffers.empty()) {
    throw py::value_error("buffers: give one per param with momentum != 0, none without");
  }
  cpu::bench::PlainSgdArgs args{
      float_pointers<float>(params, "params", numels),
      float_pointers<const float>(grads, "grads", numels),
      buffers.empty() ? std::vector<float*>{} : float_pointers<float>(buffers, "buffers", numels),
      numels,
      lr,
      momentum};
  py::gil_scoped_release release;
  cpu::bench::plain_sgd(args, num_threads);
}

}  // namespace

void bind_bench(py::module_& m) {
  m.def("bandwidth_probe", &bandwidth_probe, py::kw_only(), py::arg("inplace"), py::arg("source"),
        py::arg("n"), py::arg("scale"), py::arg("num_threads"),
        "Benchmark reference: a[i] = a[i] * scale + source[i] for each float32 array a "
        "(1 to 3 of them, n elements each).");
  m.def("plain_adamw", &plain_adamw, py::kw_only(), py::arg("numels"), py::arg("params"),
        py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("step"), py::arg("num_threads"),
        "Benchmark reference: a plain C loop doing one float32 AdamW step (step = the new "
        "step count). Not used by the optimizers.");
  m.def("plain_sgd", &plain_sgd, py::kw_only(), py::arg("numels"), py::arg("params"),
        py::arg("grads"), py::arg("buffers"), py::arg("lr"), py::arg("momentum"),
        py::arg("num_threads"),
        "Benchmark reference: a plain C loop doing one float32 SGD step (momentum with "
        "dampening 0, buffers already initialized). Not used by the optimizers.");
}

}  // namespace fusedoptim::bindings
