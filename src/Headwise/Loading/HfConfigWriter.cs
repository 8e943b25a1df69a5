using System.Text.Json;
using System.Text.Json.Nodes;

namespace Headwise.Loading;

/// <summary>Writes a <see cref="ModelConfig"/> as the <c>config.json</c> Hugging Face's config class for its model_type would write.</summary>
public static class HfConfigWriter
{
    public static JsonObject ToJson(ModelConfig c)
    {
        var o = new JsonObject { ["model_type"] = c.ModelType == "llama2c" ? "llama" : c.ModelType };
        switch (c.Family)
        {
            case ArchitectureFamily.Gpt2:
                o["architectures"] = new JsonArray("GPT2LMHeadModel");
                o["vocab_size"] = c.VocabSize;
                o["n_embd"] = c.DModel;
                o["n_layer"] = c.NLayers;
                o["n_head"] = c.NHeads;
                o["n_inner"] = c.DMlp;
                o["n_positions"] = c.MaxPositions;
                o["n_ctx"] = c.MaxPositions;
                o["layer_norm_epsilon"] = c.NormEps;
                o["activation_function"] = c.ActivationName;
                o["tie_word_embeddings"] = c.TiedEmbeddings;
                break;
            case ArchitectureFamily.Llama:
                o["architectures"] = new JsonArray(c.ModelType switch { "mistral" => "MistralForCausalLM", "qwen2" => "Qwen2ForCausalLM", _ => "LlamaForCausalLM" });
                o["vocab_size"] = c.VocabSize;
                o["hidden_size"] = c.DModel;
                o["intermediate_size"] = c.DMlp;
                o["num_hidden_layers"] = c.NLayers;
                o["num_attention_heads"] = c.NHeads;
                o["num_key_value_heads"] = c.NKvHeads;
                o["head_dim"] = c.DHead;
                o["max_position_embeddings"] = c.MaxPositions;
                o["rms_norm_eps"] = c.NormEps;
                o["rope_theta"] = c.RopeTheta;
                o["hidden_act"] = "silu";
                o["tie_word_embeddings"] = c.TiedEmbeddings;
                if (c.ModelType != "qwen2")
                {
                    o["attention_bias"] = c.QkvBias;
                    o["mlp_bias"] = c.MlpBias;
                }
                if (c.ModelType == "mistral")
                {
                    o["sliding_window"] = c.SlidingWindow > 0 ? c.SlidingWindow : null;
                }
                break;
            case ArchitectureFamily.GptNeoX:
                o["architectures"] = new JsonArray("GPTNeoXForCausalLM");
                o["vocab_size"] = c.VocabSize;
                o["hidden_size"] = c.DModel;
                o["intermediate_size"] = c.DMlp;
                o["num_hidden_layers"] = c.NLayers;
                o["num_attention_heads"] = c.NHeads;
                o["max_position_embeddings"] = c.MaxPositions;
                o["layer_norm_eps"] = c.NormEps;
                o["rotary_pct"] = (double)c.RotaryDims / c.DHead;
                o["rotary_emb_base"] = c.RopeTheta;
                o["hidden_act"] = c.ActivationName;
                o["use_parallel_residual"] = c.ParallelResidual;
                o["attention_bias"] = c.QkvBias;
                o["tie_word_embeddings"] = c.TiedEmbeddings;
                break;
        }
        if (c.BosTokenId is int bos)
        {
            o["bos_token_id"] = bos;
        }
        if (c.EosTokenId is int eos)
        {
            o["eos_token_id"] = eos;
        }
        if (c.SharedAttention is { } shared)
        {
            // Headwise's own: the shared layers' query and key tensors are absent (docs/restructure.md)
            o["headwise_shared_attention"] = new JsonObject
            {
                ["groups"] = new JsonArray([.. shared.Groups.Select(g => (JsonNode)new JsonArray([.. g.Select(l => (JsonNode)l)]))]),
            };
        }
        if (c.LayerHeads is { } heads)
        {
            // Headwise's own: layer L's attention tensors hold its own heads only (docs/restructure.md)
            JsonArray Ints(IEnumerable<int> xs) => new([.. xs.Select(x => (JsonNode)x)]);
            o["headwise_heads"] = new JsonObject
            {
                ["query_heads"] = Ints(heads.QueryHeads),
                ["kv_heads"] = Ints(heads.KvHeads),
                ["kept"] = new JsonArray([.. heads.Kept.Select(k => (JsonNode)Ints(k))]),
            };
        }
        o["torch_dtype"] = c.StoredDType switch { TensorDType.F16 => "float16", TensorDType.BF16 => "bfloat16", _ => "float32" };
        return o;
    }

    /// <summary>Writes config.json atomically.</summary>
    public static void Write(ModelConfig c, string path)
    {
        string temp = path + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(temp, ToJson(c).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(temp, path, overwrite: true);
    }
}
