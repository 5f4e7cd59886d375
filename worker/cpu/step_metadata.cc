// Planning of a step's metadata.
#include "worker/cpu/step_metadata.h"

#include "worker/engine/sequence_chunk.h"

namespace rami::cpu {

using engine::SequenceChunk;
using kv::KvCache;
using kv::SeqId;

StepMetadata PlanStep(absl::Span<const SequenceChunk> chunks, KvCache& cache) {
  StepMetadata m;
  std::vector<SeqId> batch;
  batch.reserve(chunks.size());
  const int num_layers = cache.num_layers();
  const int heads = cache.num_kv_heads();
  m.token_stream.resize(num_layers);
  for (size_t b = 0; b < chunks.size(); ++b) {
    const SequenceChunk& chunk = chunks[b];
    batch.push_back(chunk.seq_id);
    const int64_t start = cache.Length(chunk.seq_id);
    const int n = static_cast<int>(chunk.tokens.size());
    m.first_row.push_back(static_cast<int32_t>(m.logit_tokens.size()));
    for (int i = 0; i < n; ++i) {
      m.tokens.push_back(chunk.tokens[i]);
      m.positions.push_back(static_cast<int32_t>(start + i));
      for (int layer = 0; layer < num_layers; ++layer) {
        m.token_stream[layer].push_back(
            static_cast<int32_t>((static_cast<int64_t>(b) * num_layers + layer) * heads));
      }
      if (chunk.all_logits || i == n - 1) m.logit_tokens.push_back(m.num_tokens + i);
    }
    m.num_tokens += n;
  }
  m.streams = cache.BuildStepStreams(batch);
  return m;
}

}  // namespace rami::cpu
