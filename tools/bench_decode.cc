// `rami-bench decode`: the HBM roofline of one GPU (a device-to-device copy), the GEMMs of a
// decode step of a Qwen3-8B-shaped model through CublasLtGemm (eager and as one CUDA graph),
// one layer's decode attention over dense and DMS caches, the step they add up to, and the
// equal-KV-memory comparison of dense and DMS at the longest context; then whole decode steps
// through the engine (tools/bench_engine.h).
#include "tools/bench_decode.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "tools/bench_attention.h"
#include "tools/bench_engine.h"
#include "tools/bench_timing.h"
#include "tools/random_fill.h"

namespace rami::bench {
namespace {

using kernels::CublasLtGemm;
using kernels::GemmDtype;

// One projection of the step: y[B, n] = x[B, k] · W[n, k]ᵀ, W at `w` in the weight slab.
struct Projection {
  const char* name;
  int n;
  int k;
  const void* w = nullptr;
};

int PrintMachine(int device, BenchReport& report) {
  cudaDeviceProp prop;
  RAMI_BENCH_CUDA(cudaGetDeviceProperties(&prop, device));
  // CUDA 13 dropped the clock fields from cudaDeviceProp: ask for the attributes.
  int sm_khz = 0, mem_khz = 0, bus_bits = 0, driver = 0, runtime = 0;
  cudaDeviceGetAttribute(&sm_khz, cudaDevAttrClockRate, device);
  cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  const double peak_gbs = 2.0 * mem_khz * 1e3 * (bus_bits / 8.0) / 1e9;  // DDR: 2 per clock
  std::printf(
      "machine: %s (sm_%d%d), %d SMs, %.1f GiB, L2 %.0f MiB, SM clock %.0f MHz, memory clock "
      "%.0f MHz x %d bit (spec peak %.0f GB/s), driver %d, runtime %d\n",
      prop.name, prop.major, prop.minor, prop.multiProcessorCount,
      prop.totalGlobalMem / double(1 << 30), prop.l2CacheSize / double(1 << 20), sm_khz / 1e3,
      mem_khz / 1e3, bus_bits, peak_gbs, driver, runtime);
  report.Set("machine", {{"gpu", prop.name},
                         {"sms", prop.multiProcessorCount},
                         {"memory_gib", prop.totalGlobalMem / double(1 << 30)},
                         {"driver", driver},
                         {"runtime", runtime}});
  report.Summary(std::string("machine: ") + prop.name + ", " +
                 std::to_string(prop.multiProcessorCount) + " SMs, driver " +
                 std::to_string(driver) + ", runtime " + std::to_string(runtime));
  return 0;
}

// HBM bandwidth of a device-to-device copy (bytes read + bytes written), in GB/s.
int CopyBandwidth(cudaStream_t stream, int iters, double* gbs, BenchReport& report) {
  const size_t bytes = size_t{2} << 30;
  DeviceBuffer src, dst;
  RAMI_BENCH_CUDA(cudaMalloc(&src.ptr, bytes));
  RAMI_BENCH_CUDA(cudaMalloc(&dst.ptr, bytes));
  RAMI_BENCH_CUDA(cudaMemsetAsync(src.ptr, 1, bytes, stream));
  double ms = 0;
  if (TimeMs(
          stream, iters,
          [&] {
            return cudaMemcpyAsync(dst.ptr, src.ptr, bytes, cudaMemcpyDeviceToDevice, stream) ==
                           cudaSuccess
                       ? 0
                       : 1;
          },
          &ms) != 0) {
    return 1;
  }
  *gbs = 2.0 * bytes / (ms * 1e-3) / 1e9;
  std::printf("hbm copy: %.2f GiB device-to-device in %.3f ms: %.0f GB/s (read + write)\n",
              bytes / double(1 << 30), ms, *gbs);
  report.Set("copy_gbs", *gbs);
  char line[96];
  std::snprintf(line, sizeof(line), "hbm copy: %.0f GB/s (read + write)", *gbs);
  report.Summary(line);
  return 0;
}

// The GEMMs of one decode step: every layer's 7 projections, then the LM head, over one slab
// of random bf16 weights (distinct per layer, so nothing is served from L2 across layers).
class GemmStep {
 public:
  int Init(const DecodeBenchOptions& o, cudaStream_t stream) {
    stream_ = stream;
    const int q_dim = o.num_q_heads * o.head_dim, kv_dim = o.num_kv_heads * o.head_dim;
    const std::vector<Projection> layer = {{"q_proj", q_dim, o.hidden},
                                           {"k_proj", kv_dim, o.hidden},
                                           {"v_proj", kv_dim, o.hidden},
                                           {"o_proj", o.hidden, q_dim},
                                           {"gate_proj", o.intermediate, o.hidden},
                                           {"up_proj", o.intermediate, o.hidden},
                                           {"down_proj", o.hidden, o.intermediate}};
    for (int l = 0; l < o.num_layers; ++l) step_.insert(step_.end(), layer.begin(), layer.end());
    step_.push_back({"lm_head", o.vocab, o.hidden});
    for (const Projection& p : step_) {
      weight_elems_ += size_t(p.n) * p.k;
      max_n_ = std::max<size_t>(max_n_, p.n);
      max_k_ = std::max<size_t>(max_k_, p.k);
    }
    size_t free_bytes = 0, total_bytes = 0;
    RAMI_BENCH_CUDA(cudaMemGetInfo(&free_bytes, &total_bytes));
    if (weight_bytes() + (size_t{2} << 30) > free_bytes) {
      std::fprintf(stderr, "rami-bench decode: %.1f GB of weights do not fit in %.1f GB free\n",
                   weight_bytes() / 1e9, free_bytes / 1e9);
      return 1;
    }
    RAMI_BENCH_CUDA(cudaMalloc(&weights_.ptr, weight_bytes()));
    RAMI_BENCH_CUDA(FillUniformCuda(weights_.ptr, kernels::DeviceDType::kBF16, weight_elems_, 1,
                                    0.0f, 0.02f, stream));
    size_t offset = 0;
    for (Projection& p : step_) {
      p.w = static_cast<const uint16_t*>(weights_.ptr) + offset;
      offset += size_t(p.n) * p.k;
    }
    absl::StatusOr<std::unique_ptr<CublasLtGemm>> gemm = CublasLtGemm::Create();
    if (!gemm.ok()) {
      std::fprintf(stderr, "rami-bench decode: %s\n", gemm.status().ToString().c_str());
      return 1;
    }
    gemm_ = *std::move(gemm);
    return 0;
  }

  size_t weight_bytes() const { return weight_elems_ * 2; }
  size_t weight_elems() const { return weight_elems_; }
  // Activation bytes of the step at `batch` (each GEMM reads x and writes y).
  size_t activation_bytes(int batch) const {
    size_t bytes = 0;
    for (const Projection& p : step_) bytes += size_t(batch) * (p.n + p.k) * 2;
    return bytes;
  }

  // Times the step at `batch`: eager, then captured once as a CUDA graph (-1: capture failed).
  int Time(int batch, int iters, double* eager_ms, double* graph_ms) {
    if (batch > capacity_) {  // activations: [batch, max_k] in, [batch, max_n] out
      x_.Reset();
      y_.Reset();
      RAMI_BENCH_CUDA(cudaMalloc(&x_.ptr, size_t(batch) * max_k_ * 2));
      RAMI_BENCH_CUDA(cudaMalloc(&y_.ptr, size_t(batch) * max_n_ * 2));
      RAMI_BENCH_CUDA(FillUniformCuda(x_.ptr, kernels::DeviceDType::kBF16, size_t(batch) * max_k_,
                                      2, 0.0f, 1.0f, stream_));
      capacity_ = batch;
    }
    absl::Status status;
    auto run = [&]() -> int {
      for (const Projection& p : step_) {
        status = gemm_->Run({.x = x_.ptr,
                             .w = p.w,
                             .y = y_.ptr,
                             .m = batch,
                             .n = p.n,
                             .k = p.k,
                             .dtype = GemmDtype::kBf16},
                            stream_);
        if (!status.ok()) return 1;
      }
      return 0;
    };
    if (TimeMs(stream_, iters, run, eager_ms) != 0) {
      std::fprintf(stderr, "rami-bench decode: GEMMs at batch %d: %s\n", batch,
                   status.ToString().c_str());
      return 1;
    }
    // Plans exist now, so the capture only records launches.
    *graph_ms = -1;
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) == cudaSuccess) {
      const int failed = run();
      if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && failed == 0 &&
          cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess) {
        TimeMs(
            stream_, iters, [&] { return cudaGraphLaunch(exec, stream_) == cudaSuccess ? 0 : 1; },
            graph_ms);
      }
    }
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // a failed capture leaves its error behind; the eager figure stands
    return 0;
  }

 private:
  cudaStream_t stream_ = nullptr;
  std::vector<Projection> step_;
  size_t weight_elems_ = 0, max_n_ = 0, max_k_ = 0;
  DeviceBuffer weights_, x_, y_;
  int capacity_ = 0;
  std::unique_ptr<CublasLtGemm> gemm_;
};

AttentionCase MakeCase(const DecodeBenchOptions& o, int context, bool dms, int batch) {
  AttentionCase c;
  c.context = context;
  c.dms = dms;
  c.batch = batch;
  c.num_q_heads = o.num_q_heads;
  c.num_kv_heads = o.num_kv_heads;
  c.head_dim = o.head_dim;
  c.dms_rate = o.dms_rate;
  c.dms_window = o.dms_window;
  c.page_size = o.page_size;
  c.iters = o.iters;
  return c;
}

// Live KV bytes of one sequence over all layers (bf16 K and V).
double SequenceKvBytes(const DecodeBenchOptions& o, const AttentionCase& c) {
  return double(o.num_layers) * o.num_kv_heads * VisibleKeys(c) * o.head_dim * 2 * 2;
}

// The GEMM, attention and equal-budget estimate rows; their device memory is freed on return.
int RunKernelRows(const DecodeBenchOptions& o, cudaStream_t stream, double copy_gbs) {
  const double copy_bps = copy_gbs * 1e9;

  // 1. The step's GEMMs.
  GemmStep gemms;
  if (gemms.Init(o, stream) != 0) return 1;
  std::printf(
      "\ndecode GEMMs: %d layers x 7 projections + lm_head (hidden %d, %d q / %d kv heads x %d, "
      "mlp %d, vocab %d), bf16 weights %.2f GB, cuBLASLt bf16 in/out, fp32 accumulation\n",
      o.num_layers, o.hidden, o.num_q_heads, o.num_kv_heads, o.head_dim, o.intermediate, o.vocab,
      gemms.weight_bytes() / 1e9);
  std::printf("%6s %10s %10s %10s %9s %9s %8s %9s %10s\n", "batch", "eager ms", "graph ms",
              "roof ms", "bytes GB", "GB/s", "of copy", "TFLOP/s", "tokens/s");
  std::map<int, double> gemm_ms;  // batch → the faster of eager and graph
  std::string gemm_summary = "gemms ms (best of eager/graph) by batch:";
  auto time_gemms = [&](int batch, bool print) -> int {
    double eager = 0, graph = -1;
    if (gemms.Time(batch, o.iters, &eager, &graph) != 0) return 1;
    const double best = graph > 0 ? std::min(graph, eager) : eager;
    gemm_ms[batch] = best;
    if (!print) return 0;
    o.report->Add("gemm", {{"batch", batch}, {"eager_ms", eager}, {"graph_ms", graph}});
    gemm_summary += " " + std::to_string(batch) + ": " + absl::StrFormat("%.3f", best);
    const double bytes = double(gemms.weight_bytes()) + gemms.activation_bytes(batch);
    char graph_text[32] = "n/a";
    if (graph > 0) std::snprintf(graph_text, sizeof(graph_text), "%.3f", graph);
    std::printf("%6d %10.3f %10s %10.3f %9.2f %9.0f %7.0f%% %9.1f %10.0f\n", batch, eager,
                graph_text, bytes / copy_bps * 1e3, bytes / 1e9, bytes / (best * 1e-3) / 1e9,
                100.0 * bytes / copy_bps * 1e3 / best,
                2.0 * batch * gemms.weight_elems() / (best * 1e-3) / 1e12, batch / (best * 1e-3));
    return 0;
  };
  for (int batch : o.batches) {
    if (time_gemms(batch, true) != 0) return 1;
  }
  o.report->Summary(gemm_summary);
  std::printf(
      "(GB/s, of copy, TFLOP/s, tokens/s: the faster of eager and graph; roof ms = bytes / copy "
      "bandwidth; of copy = roof ms / measured ms)\n");

  // 2. One layer's decode attention, and the step it makes with the GEMMs.
  std::printf(
      "\ndecode attention (kernels::DecodeAttentionCuda, bf16, page %d; dms: rate %.3f, W=%d), "
      "one layer; step = GEMMs + %d x attention (norms, RoPE, sampling not included)\n",
      o.page_size, o.dms_rate, o.dms_window, o.num_layers);
  std::printf("%7s %6s %6s %9s %10s %9s %9s %8s %10s %8s %10s %8s %8s\n", "context", "policy",
              "batch", "live keys", "KV GB", "attn ms", "GB/s", "of copy", "step ms", "of roof",
              "tokens/s", "x sdpa", "x hf");
  for (int context : o.contexts) {
    for (bool dms : {false, true}) {
      std::string line = absl::StrFormat(
          "attention %s ctx %d, step ms (of roof) by batch:", dms ? "dms" : "dense", context);
      for (int batch : o.batches) {
        const AttentionCase c = MakeCase(o, context, dms, batch);
        AttentionResult r;
        if (TimeDecodeAttention(c, stream, &r) != 0) return 1;
        if (!r.fits) {
          std::printf("%7d %6s %6d %9lld %10.2f   (one layer's cache does not fit)\n", context,
                      dms ? "dms" : "dense", batch, static_cast<long long>(r.visible_keys),
                      r.cache_bytes / 1e9);
          continue;
        }
        const double step_ms = gemm_ms[batch] + o.num_layers * r.ms;
        const double step_bytes = double(gemms.weight_bytes()) + o.num_layers * r.bytes;
        // The peers attend over a dense cache: compare dense rows only (peer ms / rami ms).
        char sdpa_text[32] = "", hf_text[32] = "";
        const auto sdpa = o.peer_attention_ms.find({context, batch});
        const auto hf = o.peer_step_ms.find({context, batch});
        if (!dms && sdpa != o.peer_attention_ms.end()) {
          std::snprintf(sdpa_text, sizeof(sdpa_text), "%.2fx", sdpa->second / r.ms);
        }
        if (!dms && hf != o.peer_step_ms.end()) {
          std::snprintf(hf_text, sizeof(hf_text), "%.2fx", hf->second / step_ms);
        }
        std::printf("%7d %6s %6d %9lld %10.3f %9.4f %9.0f %7.0f%% %10.3f %7.0f%% %10.0f %8s %8s\n",
                    context, dms ? "dms" : "dense", batch, static_cast<long long>(r.visible_keys),
                    r.bytes / 1e9, r.ms, r.bytes / (r.ms * 1e-3) / 1e9,
                    100.0 * r.bytes / (r.ms * 1e-3) / copy_bps, step_ms,
                    100.0 * step_bytes / copy_bps * 1e3 / step_ms, batch / (step_ms * 1e-3),
                    sdpa_text, hf_text);
        o.report->Add("attention", {{"context", context},
                                    {"policy", dms ? "dms" : "dense"},
                                    {"batch", batch},
                                    {"attention_ms", r.ms},
                                    {"attention_gbs", r.bytes / (r.ms * 1e-3) / 1e9},
                                    {"step_ms", step_ms},
                                    {"tokens_per_s", batch / (step_ms * 1e-3)}});
        line += absl::StrFormat(" %d: %.2f (%.0f%%)", batch, step_ms,
                                100.0 * step_bytes / copy_bps * 1e3 / step_ms);
      }
      o.report->Summary(line);
    }
  }
  std::printf(
      "(KV GB: live K+V read per layer; of roof = (weights + %d x live KV) / copy bandwidth / "
      "step ms; x sdpa = PyTorch SDPA ms / rami attention ms; x hf = transformers' Qwen3 decode "
      "step ms / rami step ms (rami's step leaves out norms, RoPE, sampling); %s)\n",
      o.num_layers,
      o.peer_attention_ms.empty() && o.peer_step_ms.empty()
          ? "peers not measured: tests/gpu/run.sh runs tools/bench_peer.py"
          : "peers from --peer");

  // 3. Equal KV memory at the longest context: the largest batch each policy fits.
  const int context = *std::max_element(o.contexts.begin(), o.contexts.end());
  const double budget = o.kv_budget_gib * double(1 << 30);
  double tokens_per_s[2] = {0, 0};
  int batch_of[2] = {0, 0};
  for (bool dms : {false, true}) {
    const int batch =
        std::max(1, static_cast<int>(budget / SequenceKvBytes(o, MakeCase(o, context, dms, 1))));
    AttentionResult r;
    if (TimeDecodeAttention(MakeCase(o, context, dms, batch), stream, &r) != 0) return 1;
    if (!r.fits) continue;
    if (time_gemms(batch, false) != 0) return 1;
    const double step_ms = gemm_ms[batch] + o.num_layers * r.ms;
    batch_of[dms] = batch;
    tokens_per_s[dms] = batch / (step_ms * 1e-3);
  }
  std::printf(
      "\nequal KV budget %.0f GiB at context %d: dense batch %d -> %.0f tokens/s, dms batch %d "
      "-> %.0f tokens/s, dms/dense %.2fx\n",
      o.kv_budget_gib, context, batch_of[0], tokens_per_s[0], batch_of[1], tokens_per_s[1],
      tokens_per_s[0] > 0 ? tokens_per_s[1] / tokens_per_s[0] : 0.0);
  o.report->Add("equal_budget", {{"context", context},
                                 {"dense_batch", batch_of[0]},
                                 {"dense_tokens_per_s", tokens_per_s[0]},
                                 {"dms_batch", batch_of[1]},
                                 {"dms_tokens_per_s", tokens_per_s[1]}});
  o.report->Summary(absl::StrFormat(
      "kernels, equal %.0f GiB at ctx %d: dense b%d %.0f tok/s, dms b%d %.0f tok/s (%.2fx)",
      o.kv_budget_gib, context, batch_of[0], tokens_per_s[0], batch_of[1], tokens_per_s[1],
      tokens_per_s[0] > 0 ? tokens_per_s[1] / tokens_per_s[0] : 0.0));
  return 0;
}

}  // namespace

int RunDecodeBench(const DecodeBenchOptions& o, bool require_gpu) {
  if (const cuda::DeviceProbe probe = cuda::ProbeDevices(); probe.count == 0) {
    std::printf("rami-bench decode: %s: nothing to measure%s\n",
                cuda::DescribeDevices(probe).c_str(),
                require_gpu ? " (--require_gpu: failing)" : "");
    return require_gpu ? 1 : 0;
  }
  RAMI_BENCH_CUDA(cudaSetDevice(0));
  if (PrintMachine(0, *o.report) != 0) return 1;
  cudaStream_t stream;
  RAMI_BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  double copy_gbs = 0;
  int failed = CopyBandwidth(stream, o.iters, &copy_gbs, *o.report);
  if (failed == 0) failed = RunKernelRows(o, stream, copy_gbs);
  cudaStreamDestroy(stream);
  if (failed != 0) return 1;
  // 4. Whole decode steps through the engine, once the rows above have freed their memory.
  return o.engine ? RunEngineBench(o, copy_gbs) : 0;
}

}  // namespace rami::bench
