// _C.AdamCall / _C.SgdCall: one fused call's tensors except the grads,
// checked once and reused every step (the optimizers keep them in their
// plans). _C.adam_step / _C.sgd_step: check the hyperparameters and this
// step's grads, then release the GIL and run the CPU driver (or the CUDA
// launcher for device >= 0).
#include <pybind11/stl.h>

#include <algorithm>
#include <string>

#include "bindings/bindings.h"
#include "bindings/grad_watch.h"
#include "bindings/step_args.h"
#include "bindings/tensor_args.h"
#include "bindings/written_spans.h"
#include "cpu/optim_cpu.h"
#if defined(FUSEDOPTIM_WITH_CUDA)
#include "cuda/optim_cuda.h"
#endif

namespace py = pybind11;
using Addresses = std::vector<uintptr_t>;

namespace fusedoptim::bindings {
namespace {

struct AdamCall {
  AdamBatch batch;  // grads and step values are filled by each step
  Addresses steps;
  int step_dtype;
  int device;
  std::vector<int64_t> grad_positions;
  std::vector<int64_t> streams;

  AdamCall(int dtype_code, const std::vector<int64_t>& numels, const Addresses& params,
           const Addresses& exp_avgs, const Addresses& exp_avg_sqs,
           const Addresses& max_exp_avg_sqs, const Addresses& steps, int step_dtype, int device,
           const std::vector<int64_t>& positions, const PrecisionArgs& precision)
      : steps(steps), step_dtype(step_dtype), device(device), streams(precision.streams) {
    check_device_supported(device);
    check_numels(numels);
    batch.dtype = dtype_from_code(dtype_code);
    batch.numels = numels;
    batch.precision = checked_precision(batch.dtype, precision, numels);
    const ops::DType state = batch.precision.state_dtype;
    batch.params = addresses(params, "params", numels, batch.dtype);
    batch.exp_avgs = addresses(exp_avgs, "exp_avgs", numels, state);
    batch.exp_avg_sqs = addresses(exp_avg_sqs, "exp_avg_sqs", numels, state);
    if (!max_exp_avg_sqs.empty()) {
      batch.max_exp_avg_sqs = addresses(max_exp_avg_sqs, "max_exp_avg_sqs", numels, state);
    }
    check_steps(steps, step_dtype, numels.size());
    grad_positions = checked_positions(positions, numels.size());
    WrittenSpans written;
    const int bytes = ops::element_size(state);
    written.add("params", batch.params, numels, ops::element_size(batch.dtype));
    written.add("exp_avgs", batch.exp_avgs, numels, bytes);
    written.add("exp_avg_sqs", batch.exp_avg_sqs, numels, bytes);
    written.add("max_exp_avg_sqs", batch.max_exp_avg_sqs, numels, bytes);
    written.add("param_copies", batch.precision.param_copies, numels,
                ops::element_size(batch.precision.copy_dtype));
    std::vector<void*> counters;
    for (uintptr_t step : steps) counters.push_back(reinterpret_cast<void*>(step));
    written.add("steps", counters, std::vector<int64_t>(steps.size(), 1), step_dtype == 0 ? 4 : 8);
    written.check_disjoint();
  }
};

void adam_step(const AdamCall& call, const py::handle grads, double lr, double beta1, double beta2,
               double eps, double weight_decay, double l1, bool decoupled_weight_decay,
               bool amsgrad, bool maximize, double grad_unscale, double grad_clip, int num_threads,
               uintptr_t stream, bool stochastic_round, uint64_t seed) {
  check_device_supported(call.device);
  check_threads(num_threads);
  check_finite_all({{lr, "lr"},
                    {beta1, "beta1"},
                    {beta2, "beta2"},
                    {eps, "eps"},
                    {weight_decay, "weight_decay"},
                    {l1, "l1"},
                    {grad_unscale, "grad_unscale"},
                    {grad_clip, "grad_clip"}});
  AdamBatch batch = call.batch;
  if (!amsgrad) {
    batch.max_exp_avg_sqs.clear();
  } else if (batch.max_exp_avg_sqs.size() != batch.size()) {
    throw py::value_error("max_exp_avg_sqs: amsgrad=True needs one per tensor");
  }
  batch.grads =
      grad_addresses(grads, call.grad_positions, batch.numels, batch.precision.grad_dtype);
  batch.steps = incremented_steps(call.steps, call.step_dtype);
  set_stochastic_round(&batch.precision, batch.dtype, stochastic_round, seed, call.streams,
                       batch.steps);
  const ops::AdamHyper hyper{
      lr,      beta1,    beta2,        eps,      weight_decay, l1, decoupled_weight_decay,
      amsgrad, maximize, grad_unscale, grad_clip};

  launch_without_gil([&] {
#if defined(FUSEDOPTIM_WITH_CUDA)
    if (call.device >= 0) return cuda::adam_step(batch, hyper, call.device, stream);
#else
    (void)stream;
#endif
    cpu::adam_step(batch, hyper, num_threads);
  });
  store_steps(call.steps, call.step_dtype, batch.steps);
}

struct SgdCall {
  SgdBatch batch;  // grads are filled by each step
  int device;
  std::vector<int64_t> grad_positions;
  std::vector<int64_t> streams;
  // Step counters, kept only for stochastic rounding (torch's SGD counts no steps).
  Addresses steps;
  int step_dtype;

  SgdCall(int dtype_code, const std::vector<int64_t>& numels, const Addresses& params,
          const Addresses& momentum_buffers, const std::vector<bool>& new_buffers, int device,
          const std::vector<int64_t>& positions, const PrecisionArgs& precision,
          const Addresses& steps, int step_dtype)
      : device(device), streams(precision.streams), steps(steps), step_dtype(step_dtype) {
    check_device_supported(device);
    check_numels(numels);
    batch.dtype = dtype_from_code(dtype_code);
    batch.numels = numels;
    batch.precision = checked_precision(batch.dtype, precision, numels);
    batch.params = addresses(params, "params", numels, batch.dtype);
    if (!steps.empty()) check_steps(steps, step_dtype, numels.size());
    if (!momentum_buffers.empty()) {
      batch.momentum_buffers =
          addresses(momentum_buffers, "momentum_buffers", numels, batch.precision.state_dtype);
      if (new_buffers.size() != numels.size()) {
        throw py::value_error("new_buffers: expected one flag per tensor");
      }
      batch.new_buffers.assign(new_buffers.begin(), new_buffers.end());
    }
    grad_positions = checked_positions(positions, numels.size());
    WrittenSpans written;
    written.add("params", batch.params, numels, ops::element_size(batch.dtype));
    written.add("momentum_buffers", batch.momentum_buffers, numels,
                ops::element_size(batch.precision.state_dtype));
    written.add("param_copies", batch.precision.param_copies, numels,
                ops::element_size(batch.precision.copy_dtype));
    std::vector<void*> counters;
    for (uintptr_t step : steps) counters.push_back(reinterpret_cast<void*>(step));
    written.add("steps", counters, std::vector<int64_t>(steps.size(), 1), step_dtype == 0 ? 4 : 8);
    written.check_disjoint();
  }
};

void sgd_step(SgdCall& call, const py::handle grads, double lr, double momentum, double dampening,
              double weight_decay, double l1, bool nesterov, bool maximize, double grad_unscale,
              double grad_clip, int num_threads, uintptr_t stream, bool stochastic_round,
              uint64_t seed) {
  check_device_supported(call.device);
  check_threads(num_threads);
  check_finite_all({{lr, "lr"},
                    {momentum, "momentum"},
                    {dampening, "dampening"},
                    {weight_decay, "weight_decay"},
                    {l1, "l1"},
                    {grad_unscale, "grad_unscale"},
                    {grad_clip, "grad_clip"}});
  SgdBatch batch = call.batch;
  if (momentum == 0.0) {
    // A scheduler may set momentum to 0 for a step: torch then ignores the buffers.
    batch.momentum_buffers.clear();
    batch.new_buffers.clear();
  } else if (batch.momentum_buffers.size() != batch.size()) {
    throw py::value_error("momentum_buffers: momentum != 0 needs one buffer per tensor");
  }
  batch.grads =
      grad_addresses(grads, call.grad_positions, batch.numels, batch.precision.grad_dtype);
  const std::vector<double> steps =
      sgd_incremented_steps(call.steps, call.step_dtype, stochastic_round);
  set_stochastic_round(&batch.precision, batch.dtype, stochastic_round, seed, call.streams, steps);
  const ops::SgdHyper hyper{lr,       momentum, dampening,    weight_decay, l1,
                            nesterov, maximize, grad_unscale, grad_clip};

  launch_without_gil([&] {
#if defined(FUSEDOPTIM_WITH_CUDA)
    if (call.device >= 0) return cuda::sgd_step(batch, hyper, call.device, stream);
#else
    (void)stream;
#endif
    cpu::sgd_step(batch, hyper, num_threads);
  });
  if (momentum != 0.0) {
    // The buffers this step has filled exist from now on: later steps update them.
    std::fill(call.batch.new_buffers.begin(), call.batch.new_buffers.end(), 0);
  }
  if (!steps.empty()) store_steps(call.steps, call.step_dtype, steps);
}

}  // namespace

void bind_optim(py::module_& m) {
  py::class_<PrecisionArgs>(m, "CallPrecision",
                            "A fused call's mixed precision: grad and state dtypes, master "
                            "weights' half-precision copies, random streams.")
      .def(py::init([](int grad_dtype, int state_dtype, const Addresses& param_copies,
                       int copy_dtype, const std::vector<int64_t>& streams) {
             return PrecisionArgs{grad_dtype, state_dtype, param_copies, copy_dtype, streams};
           }),
           py::kw_only(), py::arg("grad_dtype") = -1, py::arg("state_dtype") = -1,
           py::arg("param_copies") = Addresses{}, py::arg("copy_dtype") = -1,
           py::arg("streams") = std::vector<int64_t>{});
  py::class_<AdamCall>(m, "AdamCall",
                       "One fused Adam call's tensors except the grads, checked once.")
      .def(py::init<int, const std::vector<int64_t>&, const Addresses&, const Addresses&,
                    const Addresses&, const Addresses&, const Addresses&, int, int,
                    const std::vector<int64_t>&, const PrecisionArgs&>(),
           py::kw_only(), py::arg("dtype"), py::arg("numels"), py::arg("params"),
           py::arg("exp_avgs"), py::arg("exp_avg_sqs"), py::arg("max_exp_avg_sqs"),
           py::arg("steps"), py::arg("step_dtype"), py::arg("device") = -1,
           py::arg("grad_positions") = std::vector<int64_t>{},
           py::arg("precision") = PrecisionArgs{})
      .def_readonly("device", &AdamCall::device);
  py::class_<SgdCall>(m, "SgdCall", "One fused SGD call's tensors except the grads, checked once.")
      .def(py::init<int, const std::vector<int64_t>&, const Addresses&, const Addresses&,
                    const std::vector<bool>&, int, const std::vector<int64_t>&,
                    const PrecisionArgs&, const Addresses&, int>(),
           py::kw_only(), py::arg("dtype"), py::arg("numels"), py::arg("params"),
           py::arg("momentum_buffers"), py::arg("new_buffers"), py::arg("device") = -1,
           py::arg("grad_positions") = std::vector<int64_t>{},
           py::arg("precision") = PrecisionArgs{}, py::arg("steps") = Addresses{},
           py::arg("step_dtype") = 0)
      .def_readonly("device", &SgdCall::device);

  m.def("adam_step", &adam_step, py::arg("call"), py::arg("grads"), py::kw_only(), py::arg("lr"),
        py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("l1"),
        py::arg("decoupled_weight_decay"), py::arg("amsgrad"), py::arg("maximize"),
        py::arg("grad_unscale") = 1.0, py::arg("grad_clip") = 1.0, py::arg("num_threads"),
        py::arg("stream") = 0, py::arg("stochastic_round") = false, py::arg("seed") = 0,
        "Adam/AdamW step over every tensor of `call`; increments each step counter. `grads`: "
        "their addresses, or a GradWatch after a successful collect().");
  m.def("sgd_step", &sgd_step, py::arg("call"), py::arg("grads"), py::kw_only(), py::arg("lr"),
        py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("l1"),
        py::arg("nesterov"), py::arg("maximize"), py::arg("grad_unscale") = 1.0,
        py::arg("grad_clip") = 1.0, py::arg("num_threads"), py::arg("stream") = 0,
        py::arg("stochastic_round") = false, py::arg("seed") = 0,
        "SGD step (momentum, dampening, nesterov, L2, L1) over every tensor of `call`.");
}

}  // namespace fusedoptim::bindings
