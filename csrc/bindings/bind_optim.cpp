// _C.adam_step / _C.sgd_step: check every argument, then release the GIL and
// run the CPU driver (or the CUDA launcher for device >= 0).
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "bindings/tensor_args.h"
#include "cpu/optim_cpu.h"
#if defined(FUSEDOPTIM_WITH_CUDA)
#include "cuda/optim_cuda.h"
#endif

namespace py = pybind11;
using Addresses = std::vector<uintptr_t>;

namespace fusedoptim::bindings {
namespace {

void adam_step(int dtype_code, const std::vector<int64_t>& numels, const Addresses& params,
               const Addresses& grads, const Addresses& exp_avgs, const Addresses& exp_avg_sqs,
               const Addresses& max_exp_avg_sqs, const Addresses& steps, int step_dtype, double lr,
               double beta1, double beta2, double eps, double weight_decay, double l1,
               bool decoupled_weight_decay, bool amsgrad, bool maximize, double grad_unscale,
               double grad_clip, int num_threads, int device, uintptr_t stream) {
  check_device_supported(device);
  check_threads(num_threads);
  for (auto [value, name] : {std::pair{lr, "lr"},
                             {beta1, "beta1"},
                             {beta2, "beta2"},
                             {eps, "eps"},
                             {weight_decay, "weight_decay"},
                             {l1, "l1"},
                             {grad_unscale, "grad_unscale"},
                             {grad_clip, "grad_clip"}}) {
    check_finite(value, name);
  }
  check_numels(numels);
  AdamBatch batch;
  batch.dtype = dtype_from_code(dtype_code);
  batch.numels = numels;
  batch.params = addresses(params, "params", numels, batch.dtype);
  for (void* g : addresses(grads, "grads", numels, batch.dtype)) batch.grads.push_back(g);
  batch.exp_avgs = addresses(exp_avgs, "exp_avgs", numels, batch.dtype);
  batch.exp_avg_sqs = addresses(exp_avg_sqs, "exp_avg_sqs", numels, batch.dtype);
  if (amsgrad) {
    batch.max_exp_avg_sqs = addresses(max_exp_avg_sqs, "max_exp_avg_sqs", numels, batch.dtype);
  } else if (!max_exp_avg_sqs.empty()) {
    throw py::value_error("max_exp_avg_sqs must be empty unless amsgrad=True");
  }
  batch.steps = incremented_steps(steps, step_dtype, numels.size());
  const ops::AdamHyper hyper{
      lr,      beta1,    beta2,        eps,      weight_decay, l1, decoupled_weight_decay,
      amsgrad, maximize, grad_unscale, grad_clip};

  // Past this point nothing can fail: the step counters and the tensors are
  // written together.
  store_steps(steps, step_dtype, batch.steps);
  py::gil_scoped_release release;
#if defined(FUSEDOPTIM_WITH_CUDA)
  if (device >= 0) return cuda::adam_step(batch, hyper, device, stream);
#else
  (void)stream;
#endif
  cpu::adam_step(batch, hyper, num_threads);
}

void sgd_step(int dtype_code, const std::vector<int64_t>& numels, const Addresses& params,
              const Addresses& grads, const Addresses& momentum_buffers,
              const std::vector<bool>& new_buffers, double lr, double momentum, double dampening,
              double weight_decay, double l1, bool nesterov, bool maximize, double grad_unscale,
              double grad_clip, int num_threads, int device, uintptr_t stream) {
  check_device_supported(device);
  check_threads(num_threads);
  for (auto [value, name] : {std::pair{lr, "lr"},
                             {momentum, "momentum"},
                             {dampening, "dampening"},
                             {weight_decay, "weight_decay"},
                             {l1, "l1"},
                             {grad_unscale, "grad_unscale"},
                             {grad_clip, "grad_clip"}}) {
    check_finite(value, name);
  }
  check_numels(numels);
  SgdBatch batch;
  batch.dtype = dtype_from_code(dtype_code);
  batch.numels = numels;
  batch.params = addresses(params, "params", numels, batch.dtype);
  for (void* g : addresses(grads, "grads", numels, batch.dtype)) batch.grads.push_back(g);
  if (momentum != 0.0) {
    batch.momentum_buffers = addresses(momentum_buffers, "momentum_buffers", numels, batch.dtype);
    if (new_buffers.size() != numels.size()) {
      throw py::value_error("new_buffers: expected one flag per tensor");
    }
    batch.new_buffers.assign(new_buffers.begin(), new_buffers.end());
  } else if (!momentum_buffers.empty()) {
    throw py::value_error("momentum_buffers must be empty when momentum == 0");
  }
  const ops::SgdHyper hyper{lr,       momentum, dampening,    weight_decay, l1,
                            nesterov, maximize, grad_unscale, grad_clip};

  py::gil_scoped_release release;
#if defined(FUSEDOPTIM_WITH_CUDA)
  if (device >= 0) return cuda::sgd_step(batch, hyper, device, stream);
#else
  (void)stream;
#endif
  cpu::sgd_step(batch, hyper, num_threads);
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("adam_step", &adam_step, py::kw_only(), py::arg("dtype"), py::arg("numels"),
        py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
        py::arg("max_exp_avg_sqs"), py::arg("steps"), py::arg("step_dtype"), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("l1"),
        py::arg("decoupled_weight_decay"), py::arg("amsgrad"), py::arg("maximize"),
        py::arg("grad_unscale") = 1.0, py::arg("grad_clip") = 1.0, py::arg("num_threads"),
        py::arg("device") = -1, py::arg("stream") = 0,
        "Adam/AdamW step over every tensor of a group; increments each step counter.");
  m.def("sgd_step", &sgd_step, py::kw_only(), py::arg("dtype"), py::arg("numels"),
        py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::arg("new_buffers"),
        py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"),
        py::arg("l1"), py::arg("nesterov"), py::arg("maximize"), py::arg("grad_unscale") = 1.0,
        py::arg("grad_clip") = 1.0, py::arg("num_threads"), py::arg("device") = -1,
        py::arg("stream") = 0,
        "SGD step (momentum, dampening, nesterov, L2, L1) over every tensor of a group.");
}

}  // namespace fusedoptim::bindings
