// A loaded model: config, weight views (into mapped files or owned buffers), vocab.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/tensor.h"
#include "model/vocab_spec.h"
#include "util/huge_page_region.h"
#include "util/mapped_file.h"
#include "util/status.h"

namespace kvserve {

struct LayerWeights {
  Tensor attn_norm;             // {hidden}
  Tensor wq, wk, wv, wo;        // {q_dim, hidden}, {kv_dim, hidden}, {kv_dim, hidden}, {hidden, q_dim}
  Tensor bq, bk, bv;            // optional (qwen2)
  Tensor q_norm, k_norm;        // optional {head_dim} (qwen3)
  Tensor ffn_norm;              // {hidden}
  Tensor w_gate, w_up, w_down;  // {inter, hidden}, {inter, hidden}, {hidden, inter}
};

struct ModelWeights {
  Tensor tok_embeddings;  // {vocab, hidden}
  std::vector<LayerWeights> layers;
  Tensor output_norm;     // {hidden}
  Tensor output;          // {vocab, hidden}; equals tok_embeddings when tied

  // Every tensor slot, absent optional ones included (check present()).
  std::vector<Tensor*> All();
};

struct Model {
  std::string path;
  ModelConfig config;
  ModelWeights weights;
  VocabSpec vocab;
  // RoPE inverse frequencies, head_dim/2 entries, with any scaling (llama3, linear,
  // or a GGUF rope_freqs tensor) already applied. Filled by the loader.
  std::vector<float> rope_inv_freq;
  // Storage the tensor views point into.
  std::vector<std::unique_ptr<MappedFile>> mapped_files;
  std::vector<std::shared_ptr<void>> file_owners;  // GgufFile / SafetensorsSet the views point into
  std::vector<std::vector<uint8_t>> owned_buffers;
  std::unique_ptr<HugePageRegion> weight_region;  // see CopyWeightsToHugePages
};

// Loads a GGUF file or a Hugging Face model directory (config.json + *.safetensors
// + tokenizer files). Errors name the file, the tensor or key, and the reason.
StatusOr<std::unique_ptr<Model>> LoadModel(const std::string& path);

}  // namespace kvserve
