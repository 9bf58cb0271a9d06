// Long-context probes of `crescent bench engine`: the time to first token of
// long prompts under a given step budget, the decode stall a long prefill
// causes to requests already decoding (per step budget: the chunk-size
// trade-off), and decode attention's KV read rate at a long context.
// Thread-safety: one probe at a time per engine.
#pragma once

#include <cstdint>
#include <vector>

#include "cli/cli_engine_probe.h"
#include "engine/engine.h"
#include "model/model_config.h"

namespace crescent::cli {

// Attention and matmul FLOPs of prefilling n tokens from an empty cache.
struct PrefillFlops {
  double attention = 0, matmul = 0;
};
PrefillFlops SplitPrefillFlops(const model::ModelConfig& c, double total_flops, int64_t n);

struct StallProbe {
  double ttft_s = 0;           // the long prompt's time to first token
  double decode_gap_max_s = 0;  // longest wait between two tokens of a decoding request meanwhile
  double decode_gap_mean_s = 0;
  double decode_gap_before_s = 0;  // mean gap before the long prompt came
};
// `decoders` requests of `ctx` tokens decode (up to max_tokens each, which must
// outlast the long prefill); once they run, a prompt of prompt_len arrives.
// Returns its TTFT and the decoders' token gaps during it.
StallProbe MeasureDecodeStall(engine::Engine& e, PromptMaker& pm, int64_t decoders, int64_t ctx, int64_t prompt_len,
                              int64_t max_tokens);

// Prefill attention of one layer over an n-token prompt, computed in steps of
// `chunk` tokens as the engine does (each attending to all earlier chunks' KV):
// GFLOP/s of its QK^T and PV products (the kernel the engine runs, the model's
// heads, bf16 pages).
double PrefillAttentionGflops(const model::ModelConfig& c, int64_t n, int64_t chunk);

// One decode step's attention over `ctx` tokens of KV for every layer (one
// sequence, the model's heads, bf16 pages, each layer in its own buffer so
// the reads come from memory): GB/s of K and V read.
double DecodeAttentionGBs(const model::ModelConfig& c, int64_t ctx);

}  // namespace crescent::cli
