// The optimizers with 8-bit state (see [note: 8-bit state] in ops/quant8.h):
// _C.Adam8bitCall / _C.Sgd8bitCall hold one fused call's tensors except the
// grads, checked once; _C.adam8bit_step / _C.sgd8bit_step check this step's
// hyperparameters and grads, then run the CPU driver or the CUDA launcher
// without the GIL. _C.quantize_moment / _C.dequantize_moment convert one
// moment between float32 values and its 8-bit form (loading a state dict of
// another precision).
#include <pybind11/stl.h>

#include <algorithm>
#include <string>

#include "bindings/bindings.h"
#include "bindings/step_args.h"
#include "bindings/tensor_args.h"
#include "bindings/written_spans.h"
#include "cpu/quant_cpu.h"
#if defined(FUSEDOPTIM_WITH_CUDA)
#include "cuda/quant_cuda.h"
#endif

namespace py = pybind11;
using Addresses = std::vector<uintptr_t>;

namespace fusedoptim::bindings {
namespace {

void check_block_size(int64_t block_size) {
  const bool power_of_two = block_size > 0 && (block_size & (block_size - 1)) == 0;
  if (!power_of_two || block_size < 32 || block_size > cpu::kMaxQuantBlock) {
    throw py::value_error("block_size must be a power of two from 32 to " +
                          std::to_string(cpu::kMaxQuantBlock) + ", got " +
                          std::to_string(block_size));
  }
}

ops::DType param_dtype_from_code(int code) {
  const ops::DType dtype = dtype_from_code(code);
  if (dtype == ops::DType::kFloat64) {
    throw py::value_error(
        "dtype: 8-bit optimizer state is for float32, float16 and bfloat16 params; keep "
        "float64 params on the float-state optimizers");
  }
  return dtype;
}

std::vector<int64_t> block_counts(const std::vector<int64_t>& numels, int64_t block_size) {
  std::vector<int64_t> counts;
  for (int64_t n : numels) counts.push_back((n + block_size - 1) / block_size);
  return counts;
}

// One moment of every tensor, checked: a code per element, an absmax per block.
QuantMoments moments(const Addresses& codes, const Addresses& absmax, const std::string& name,
                     const std::vector<int64_t>& numels, int64_t block_size) {
  QuantMoments out;
  for (void* p : addresses(codes, (name + "_codes").c_str(), numels, 1)) {
    out.codes.push_back(static_cast<uint8_t*>(p));
  }
  const std::vector<int64_t> blocks = block_counts(numels, block_size);
  for (void* p : addresses(absmax, (name + "_absmax").c_str(), blocks, 4)) {
    out.absmax.push_back(static_cast<float*>(p));
  }
  return out;
}

void add_written(WrittenSpans* written, const char* codes_name, const char* absmax_name,
                 const QuantMoments& moment, const std::vector<int64_t>& numels,
                 int64_t block_size) {
  written->add(codes_name, {moment.codes.begin(), moment.codes.end()}, numels, 1);
  written->add(absmax_name, {moment.absmax.begin(), moment.absmax.end()},
               block_counts(numels, block_size), 4);
}

struct Adam8bitCall {
  Adam8bitBatch batch;  // grads and step values are filled by each step
  Addresses steps;
  int step_dtype;
  int device;
  std::vector<int64_t> grad_positions;
  std::vector<int64_t> streams;

  Adam8bitCall(int dtype_code, int64_t block_size, const std::vector<int64_t>& numels,
               const Addresses& params, const Addresses& exp_avg_codes,
               const Addresses& exp_avg_absmax, const Addresses& exp_avg_sq_codes,
               const Addresses& exp_avg_sq_absmax, const Addresses& max_exp_avg_sq_codes,
               const Addresses& max_exp_avg_sq_absmax, const Addresses& steps, int step_dtype,
               int device, const std::vector<int64_t>& positions, const PrecisionArgs& precision)
      : steps(steps), step_dtype(step_dtype), device(device), streams(precision.streams) {
    check_device_supported(device);
    check_numels(numels);
    check_block_size(block_size);
    batch.dtype = param_dtype_from_code(dtype_code);
    batch.precision = checked_precision(batch.dtype, precision, numels);
    batch.block_size = block_size;
    batch.numels = numels;
    batch.params = addresses(params, "params", numels, batch.dtype);
    batch.exp_avg = moments(exp_avg_codes, exp_avg_absmax, "exp_avg", numels, block_size);
    batch.exp_avg_sq =
        moments(exp_avg_sq_codes, exp_avg_sq_absmax, "exp_avg_sq", numels, block_size);
    if (!max_exp_avg_sq_codes.empty()) {
      batch.max_exp_avg_sq = moments(max_exp_avg_sq_codes, max_exp_avg_sq_absmax, "max_exp_avg_sq",
                                     numels, block_size);
    }
    check_steps(steps, step_dtype, numels.size());
    grad_positions = checked_positions(positions, numels.size());
    WrittenSpans written;
    written.add("params", batch.params, numels, ops::element_size(batch.dtype));
    add_written(&written, "exp_avg_codes", "exp_avg_absmax", batch.exp_avg, numels, block_size);
    add_written(&written, "exp_avg_sq_codes", "exp_avg_sq_absmax", batch.exp_avg_sq, numels,
                block_size);
    if (!batch.max_exp_avg_sq.empty()) {
      add_written(&written, "max_exp_avg_sq_codes", "max_exp_avg_sq_absmax", batch.max_exp_avg_sq,
                  numels, block_size);
    }
    std::vector<void*> counters;
    for (uintptr_t step : steps) counters.push_back(reinterpret_cast<void*>(step));
    written.add("steps", counters, std::vector<int64_t>(steps.size(), 1), step_dtype == 0 ? 4 : 8);
    written.add("param_copies", batch.precision.param_copies, numels,
                ops::element_size(batch.precision.copy_dtype));
    written.check_disjoint();
  }
};

void adam8bit_step(const Adam8bitCall& call, const py::handle grads, double lr, double beta1,
                   double beta2, double eps, double weight_decay, double l1,
                   bool decoupled_weight_decay, bool amsgrad, bool maximize, double grad_unscale,
                   double grad_clip, int num_threads, uintptr_t stream, bool stochastic_round,
                   uint64_t seed) {
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
  Adam8bitBatch batch = call.batch;
  if (!amsgrad) {
    batch.max_exp_avg_sq = {};
  } else if (batch.max_exp_avg_sq.codes.size() != batch.size()) {
    throw py::value_error("max_exp_avg_sq_codes: amsgrad=True needs one per tensor");
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
    if (call.device >= 0) return cuda::adam8bit_step(batch, hyper, call.device, stream);
#else
    (void)stream;
#endif
    cpu::adam8bit_step(batch, hyper, num_threads);
  });
  store_steps(call.steps, call.step_dtype, batch.steps);
}

struct Sgd8bitCall {
  Sgd8bitBatch batch;  // grads are filled by each step
  int device;
  std::vector<int64_t> grad_positions;
  std::vector<int64_t> streams;
  Addresses steps;  // as SgdCall::steps
  int step_dtype;

  Sgd8bitCall(int dtype_code, int64_t block_size, const std::vector<int64_t>& numels,
              const Addresses& params, const Addresses& momentum_buffer_codes,
              const Addresses& momentum_buffer_absmax, const std::vector<bool>& new_buffers,
              int device, const std::vector<int64_t>& positions, const PrecisionArgs& precision,
              const Addresses& steps, int step_dtype)
      : device(device), streams(precision.streams), steps(steps), step_dtype(step_dtype) {
    check_device_supported(device);
    check_numels(numels);
    check_block_size(block_size);
    batch.dtype = param_dtype_from_code(dtype_code);
    batch.precision = checked_precision(batch.dtype, precision, numels);
    if (!steps.empty()) check_steps(steps, step_dtype, numels.size());
    batch.block_size = block_size;
    batch.numels = numels;
    batch.params = addresses(params, "params", numels, batch.dtype);
    WrittenSpans written;
    written.add("params", batch.params, numels, ops::element_size(batch.dtype));
    if (!momentum_buffer_codes.empty()) {
      batch.momentum_buffer = moments(momentum_buffer_codes, momentum_buffer_absmax,
                                      "momentum_buffer", numels, block_size);
      if (new_buffers.size() != numels.size()) {
        throw py::value_error("new_buffers: expected one flag per tensor");
      }
      batch.new_buffers.assign(new_buffers.begin(), new_buffers.end());
      add_written(&written, "momentum_buffer_codes", "momentum_buffer_absmax",
                  batch.momentum_buffer, numels, block_size);
    }
    grad_positions = checked_positions(positions, numels.size());
    written.add("param_copies", batch.precision.param_copies, numels,
                ops::element_size(batch.precision.copy_dtype));
    std::vector<void*> counters;
    for (uintptr_t step : steps) counters.push_back(reinterpret_cast<void*>(step));
    written.add("steps", counters, std::vector<int64_t>(steps.size(), 1), step_dtype == 0 ? 4 : 8);
    written.check_disjoint();
  }
};

void sgd8bit_step(Sgd8bitCall& call, const py::handle grads, double lr, double momentum,
                  double dampening, double weight_decay, double l1, bool nesterov, bool maximize,
                  double grad_unscale, double grad_clip, int num_threads, uintptr_t stream,
                  bool stochastic_round, uint64_t seed) {
  check_device_supported(call.device);
  check_threads(num_threads);
  check_finite_all({{lr, "lr"},
                    {momentum, "momentum"},
                    {dampening, "dampening"},
                    {weight_decay, "weight_decay"},
                    {l1, "l1"},
                    {grad_unscale, "grad_unscale"},
                    {grad_clip, "grad_clip"}});
  Sgd8bitBatch batch = call.batch;
  if (momentum == 0.0) {
    // A scheduler may set momentum to 0 for a step: torch then ignores the buffers.
    batch.momentum_buffer = {};
    batch.new_buffers.clear();
  } else if (batch.momentum_buffer.codes.size() != batch.size()) {
    throw py::value_error("momentum_buffer_codes: momentum != 0 needs one buffer per tensor");
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
    if (call.device >= 0) return cuda::sgd8bit_step(batch, hyper, call.device, stream);
#else
    (void)stream;
#endif
    cpu::sgd8bit_step(batch, hyper, num_threads);
  });
  if (momentum != 0.0) {
    std::fill(call.batch.new_buffers.begin(), call.batch.new_buffers.end(), 0);
  }
  if (!steps.empty()) store_steps(call.steps, call.step_dtype, steps);
}

cpu::MomentKind kind_from_code(int code) {
  if (code != 0 && code != 1) {
    throw py::value_error("kind: 0 (signed values) or 1 (second moment), got " +
                          std::to_string(code));
  }
  return static_cast<cpu::MomentKind>(code);
}

// Checks the three arrays of one conversion; returns them typed.
struct Conversion {
  float* values;
  uint8_t* codes;
  float* absmax;
};
Conversion conversion(uintptr_t values, uintptr_t codes, uintptr_t absmax, int64_t numel,
                      int64_t block_size, int device) {
  check_device_supported(device);
  check_numels({numel});
  check_block_size(block_size);
  const std::vector<int64_t> n{numel};
  const std::vector<int64_t> blocks = block_counts(n, block_size);
  return {static_cast<float*>(addresses({values}, "values", n, 4)[0]),
          static_cast<uint8_t*>(addresses({codes}, "codes", n, 1)[0]),
          static_cast<float*>(addresses({absmax}, "absmax", blocks, 4)[0])};
}

void quantize_moment(int kind_code, uintptr_t values, uintptr_t codes, uintptr_t absmax,
                     int64_t numel, int64_t block_size, int device, int num_threads,
                     uintptr_t stream) {
  const cpu::MomentKind kind = kind_from_code(kind_code);
  check_threads(num_threads);
  const Conversion c = conversion(values, codes, absmax, numel, block_size, device);
  launch_without_gil([&] {
#if defined(FUSEDOPTIM_WITH_CUDA)
    if (device >= 0) {
      return cuda::quantize(kind, c.values, c.codes, c.absmax, numel, block_size, device, stream);
    }
#else
    (void)stream;
#endif
    cpu::quantize(kind, c.values, c.codes, c.absmax, numel, block_size, num_threads);
  });
}

void dequantize_moment(int kind_code, uintptr_t codes, uintptr_t absmax, uintptr_t values,
                       int64_t numel, int64_t block_size, int device, int num_threads,
                       uintptr_t stream) {
  const cpu::MomentKind kind = kind_from_code(kind_code);
  check_threads(num_threads);
  const Conversion c = conversion(values, codes, absmax, numel, block_size, device);
  launch_without_gil([&] {
#if defined(FUSEDOPTIM_WITH_CUDA)
    if (device >= 0) {
      return cuda::dequantize(kind, c.codes, c.absmax, c.values, numel, block_size, device, stream);
    }
#else
    (void)stream;
#endif
    cpu::dequantize(kind, c.codes, c.absmax, c.values, numel, block_size, num_threads);
  });
}

}  // namespace

void bind_quant(py::module_& m) {
  py::class_<Adam8bitCall>(m, "Adam8bitCall",
                           "One fused Adam call with 8-bit state: its tensors except the grads, "
                           "checked once.")
      .def(py::init<int, int64_t, const std::vector<int64_t>&, const Addresses&, const Addresses&,
                    const Addresses&, const Addresses&, const Addresses&, const Addresses&,
                    const Addresses&, const Addresses&, int, int, const std::vector<int64_t>&,
                    const PrecisionArgs&>(),
           py::kw_only(), py::arg("dtype"), py::arg("block_size"), py::arg("numels"),
           py::arg("params"), py::arg("exp_avg_codes"), py::arg("exp_avg_absmax"),
           py::arg("exp_avg_sq_codes"), py::arg("exp_avg_sq_absmax"),
           py::arg("max_exp_avg_sq_codes"), py::arg("max_exp_avg_sq_absmax"), py::arg("steps"),
           py::arg("step_dtype"), py::arg("device") = -1,
           py::arg("grad_positions") = std::vector<int64_t>{},
           py::arg("precision") = PrecisionArgs{})
      .def_readonly("device", &Adam8bitCall::device);
  py::class_<Sgd8bitCall>(m, "Sgd8bitCall",
                          "One fused SGD call with an 8-bit momentum buffer: its tensors except "
                          "the grads, checked once.")
      .def(py::init<int, int64_t, const std::vector<int64_t>&, const Addresses&, const Addresses&,
                    const Addresses&, const std::vector<bool>&, int, const std::vector<int64_t>&,
                    const PrecisionArgs&, const Addresses&, int>(),
           py::kw_only(), py::arg("dtype"), py::arg("block_size"), py::arg("numels"),
           py::arg("params"), py::arg("momentum_buffer_codes"), py::arg("momentum_buffer_absmax"),
           py::arg("new_buffers"), py::arg("device") = -1,
           py::arg("grad_positions") = std::vector<int64_t>{},
           py::arg("precision") = PrecisionArgs{}, py::arg("steps") = Addresses{},
           py::arg("step_dtype") = 0)
      .def_readonly("device", &Sgd8bitCall::device);

  m.def("adam8bit_step", &adam8bit_step, py::arg("call"), py::arg("grads"), py::kw_only(),
        py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("l1"), py::arg("decoupled_weight_decay"), py::arg("amsgrad"), py::arg("maximize"),
        py::arg("grad_unscale") = 1.0, py::arg("grad_clip") = 1.0, py::arg("num_threads"),
        py::arg("stream") = 0, py::arg("stochastic_round") = false, py::arg("seed") = 0,
        "Adam/AdamW step with 8-bit moments over every tensor of `call`; increments each step "
        "counter. `grads`: their addresses, or a GradWatch after a successful collect().");
  m.def("sgd8bit_step", &sgd8bit_step, py::arg("call"), py::arg("grads"), py::kw_only(),
        py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"),
        py::arg("l1"), py::arg("nesterov"), py::arg("maximize"), py::arg("grad_unscale") = 1.0,
        py::arg("grad_clip") = 1.0, py::arg("num_threads"), py::arg("stream") = 0,
        py::arg("stochastic_round") = false, py::arg("seed") = 0,
        "SGD step with an 8-bit momentum buffer over every tensor of `call`.");
  m.def("quantize_moment", &quantize_moment, py::kw_only(), py::arg("kind"), py::arg("values"),
        py::arg("codes"), py::arg("absmax"), py::arg("numel"), py::arg("block_size"),
        py::arg("device") = -1, py::arg("num_threads"), py::arg("stream") = 0,
        "Encodes `numel` float32 values (kind 0: signed; 1: a second moment, kept as its square "
        "root) into uint8 codes and a float32 absmax per block.");
  m.def("dequantize_moment", &dequantize_moment, py::kw_only(), py::arg("kind"), py::arg("codes"),
        py::arg("absmax"), py::arg("values"), py::arg("numel"), py::arg("block_size"),
        py::arg("device") = -1, py::arg("num_threads"), py::arg("stream") = 0,
        "Decodes what quantize_moment encoded into float32 values.");
}

}  // namespace fusedoptim::bindings
