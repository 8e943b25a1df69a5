using System.Text.Json;
using Headwise.Compute;

namespace Headwise.Loading;

/// <summary>Reads a Hugging Face <c>config.json</c> into a <see cref="ModelConfig"/>, with the defaults of each HF config class.</summary>
public static class HfConfigReader
{
    public static readonly string[] SupportedModelTypes = ["gpt2", "llama", "mistral", "qwen2", "gpt_neox", "deepseek_v3", "vit"];

    public static ModelConfig Read(string configPath)
    {
        if (!File.Exists(configPath))
        {
            throw new ModelFormatException($"{configPath}: file not found (a Hugging Face model directory needs config.json)");
        }
        return Parse(File.ReadAllBytes(configPath), configPath);
    }

    /// <summary>Reads a config.json's bytes; <paramref name="configPath"/> names it in messages.</summary>
    public static ModelConfig Parse(ReadOnlyMemory<byte> json, string configPath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{configPath}: not valid JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException($"{configPath}: expected a JSON object, found {doc.RootElement.ValueKind}");
            }
            var c = new JsonFields(doc.RootElement, configPath);
            string type = c.String("model_type") ?? throw new ModelFormatException($"{configPath}: no \"model_type\" field");
            var (config, fields) = type switch
            {
                "gpt2" => Gpt2(c),
                "llama" or "mistral" or "qwen2" => Llama(c, type),
                "gpt_neox" => GptNeoX(c),
                "deepseek_v3" => DeepseekV3(c),
                "vit" => Vit(c),
                _ => throw new ModelFormatException($"{configPath}: model_type '{type}' is not supported (supported: {string.Join(", ", SupportedModelTypes)})"),
            };
            if (c.Has("headwise_shared_attention"))
            {
                config = config with { SharedAttention = SharedAttentionBlock(c) };
            }
            if (c.Has("headwise_heads"))
            {
                config = config with { LayerHeads = LayerHeadsBlock(c) };
            }
            config.Validate(configPath, fields);
            return config;
        }
    }

    private static readonly ConfigFieldNames Gpt2Fields = new("vocab_size", "n_embd", "n_layer", "n_head", "n_head",
        "n_embd / n_head", "n_inner", "n_positions", "layer_norm_epsilon", "rotary_dims", "sliding_window", DHeadFromWidth: true);

    private static readonly ConfigFieldNames NeoXFields = new("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "num_attention_heads", "hidden_size / num_attention_heads", "intermediate_size", "max_position_embeddings", "layer_norm_eps",
        "rotary_pct", "sliding_window", DHeadFromWidth: true);

    private static ConfigFieldNames LlamaFields(bool explicitHeadDim) => new("vocab_size", "hidden_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", explicitHeadDim ? "head_dim" : "hidden_size / num_attention_heads",
        "intermediate_size", "max_position_embeddings", "rms_norm_eps", "head_dim", "sliding_window", DHeadFromWidth: !explicitHeadDim);

    // d_model / heads, or 0 for Validate to report when heads is not positive
    private static int HeadSize(int d, int h) => h > 0 ? d / h : 0;

    private static (ModelConfig, ConfigFieldNames) Gpt2(JsonFields c)
    {
        // HF GPT2Config defaults: n_embd 768, n_layer 12, n_head 12, n_positions 1024, layer_norm_epsilon 1e-5, activation "gelu_new".
        if (c.Bool("scale_attn_by_inverse_layer_idx") == true)
        {
            throw c.Unsupported("scale_attn_by_inverse_layer_idx = true");
        }
        if (c.Bool("scale_attn_weights") == false)
        {
            throw c.Unsupported("scale_attn_weights = false");
        }
        int d = c.Int("n_embd") ?? 768;
        int h = c.Int("n_head") ?? 12;
        int vocab = c.Int("vocab_size") ?? 50257;
        // GPT2Config defaults BOS and EOS to 50256, GPT-2's <|endoftext|>; a smaller vocabulary has no such id
        int? endOfText = vocab > 50256 ? 50256 : null;
        return (new ModelConfig
        {
            ModelType = "gpt2",
            Family = ArchitectureFamily.Gpt2,
            VocabSize = vocab,
            DModel = d,
            NLayers = c.Int("n_layer") ?? 12,
            NHeads = h,
            NKvHeads = h,
            DHead = HeadSize(d, h),
            DMlp = c.Int("n_inner") ?? 4 * d,
            MaxPositions = c.Int("n_positions") ?? c.Int("n_ctx") ?? 1024,
            NormEps = (float)(c.Double("layer_norm_epsilon") ?? 1e-5),
            Norm = NormKind.LayerNorm,
            Activation = Activation(c, c.String("activation_function") ?? "gelu_new"),
            GatedMlp = false,
            Positions = PositionKind.Learned,
            TiedEmbeddings = c.Bool("tie_word_embeddings") ?? true,
            QkvBias = true,
            OutputBias = true,
            MlpBias = true,
            BosTokenId = c.Int("bos_token_id") ?? endOfText,
            EosTokenId = c.Int("eos_token_id") ?? endOfText,
        }, Gpt2Fields);
    }

    private static (ModelConfig, ConfigFieldNames) Llama(JsonFields c, string type)
    {
        if (c.Has("rope_scaling") && c.Raw("rope_scaling").ValueKind == JsonValueKind.Object)
        {
            string kind = c.Raw("rope_scaling").TryGetProperty("rope_type", out var rt) ? rt.GetString() ?? "?" :
                c.Raw("rope_scaling").TryGetProperty("type", out var t) ? t.GetString() ?? "?" : "?";
            if (kind != "default")
            {
                throw c.Unsupported($"rope_scaling of type '{kind}'");
            }
        }
        int d = c.Int("hidden_size") ?? 4096;
        int h = c.Int("num_attention_heads") ?? 32;
        int? explicitHeadDim = c.Int("head_dim");
        int headDim = explicitHeadDim ?? HeadSize(d, h);
        bool qwen = type == "qwen2";
        bool attentionBias = c.Bool("attention_bias") ?? false;
        int window = 0;
        if (type == "mistral")
        {
            window = c.Int("sliding_window") ?? 0; // null = full attention
        }
        else if (qwen && c.Bool("use_sliding_window") == true)
        {
            throw c.Unsupported("use_sliding_window = true for qwen2");
        }
        string act = c.String("hidden_act") ?? "silu";
        if (act != "silu")
        {
            throw c.Unsupported($"hidden_act '{act}' for {type} (only the SwiGLU 'silu' MLP is implemented)");
        }
        return (new ModelConfig
        {
            ModelType = type,
            Family = ArchitectureFamily.Llama,
            VocabSize = c.Int("vocab_size") ?? 32000,
            DModel = d,
            NLayers = c.Int("num_hidden_layers") ?? 32,
            NHeads = h,
            NKvHeads = c.Int("num_key_value_heads") ?? h,
            DHead = headDim,
            DMlp = c.Int("intermediate_size") ?? 11008,
            MaxPositions = c.Int("max_position_embeddings") ?? 2048,
            NormEps = (float)(c.Double("rms_norm_eps") ?? 1e-6),
            Norm = NormKind.RmsNorm,
            Activation = ActivationFunction.Silu,
            GatedMlp = true,
            Positions = PositionKind.Rotary,
            TiedEmbeddings = c.Bool("tie_word_embeddings") ?? false,
            RopeTheta = c.Double("rope_theta") ?? 10000,
            RotaryDims = headDim,
            RopeLayout = RopeLayout.RotateHalf,
            QkvBias = qwen || attentionBias,
            OutputBias = !qwen && attentionBias,
            MlpBias = c.Bool("mlp_bias") ?? false,
            SlidingWindow = window,
            BosTokenId = c.Int("bos_token_id"),
            EosTokenId = c.Int("eos_token_id"),
        }, LlamaFields(explicitHeadDim is not null));
    }

    private static (ModelConfig, ConfigFieldNames) GptNeoX(JsonFields c)
    {
        int d = c.Int("hidden_size") ?? 6144;
        int h = c.Int("num_attention_heads") ?? 64;
        int headDim = HeadSize(d, h);
        double pct = c.Double("rotary_pct") ?? c.Double("partial_rotary_factor") ?? 0.25;
        bool bias = c.Bool("attention_bias") ?? true;
        int rotaryDims = (int)(headDim * pct); // HF: self.rotary_ndims = int(self.head_size * config.rotary_pct)
        return (new ModelConfig
        {
            ModelType = "gpt_neox",
            Family = ArchitectureFamily.GptNeoX,
            VocabSize = c.Int("vocab_size") ?? 50432,
            DModel = d,
            NLayers = c.Int("num_hidden_layers") ?? 44,
            NHeads = h,
            NKvHeads = h,
            DHead = headDim,
            DMlp = c.Int("intermediate_size") ?? 4 * d,
            MaxPositions = c.Int("max_position_embeddings") ?? 2048,
            NormEps = (float)(c.Double("layer_norm_eps") ?? 1e-5),
            Norm = NormKind.LayerNorm,
            Activation = Activation(c, c.String("hidden_act") ?? "gelu"),
            GatedMlp = false,
            Positions = rotaryDims > 0 ? PositionKind.Rotary : PositionKind.None,
            TiedEmbeddings = c.Bool("tie_word_embeddings") ?? false,
            RopeTheta = c.Double("rotary_emb_base") ?? c.Double("rope_theta") ?? 10000,
            RotaryDims = rotaryDims,
            RopeLayout = RopeLayout.RotateHalf,
            ParallelResidual = c.Bool("use_parallel_residual") ?? true,
            QkvBias = bias,
            OutputBias = bias,
            MlpBias = true,
            BosTokenId = c.Int("bos_token_id"),
            EosTokenId = c.Int("eos_token_id"),
        }, NeoXFields);
    }

    private static readonly ConfigFieldNames DeepseekV3Fields = new("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "v_head_dim", "intermediate_size", "max_position_embeddings", "rms_norm_eps", "qk_rope_head_dim",
        "sliding_window", DHeadFromWidth: false);

    private static (ModelConfig, ConfigFieldNames) DeepseekV3(JsonFields c)
    {
        // HF DeepseekV3Config defaults (the full 671B model's shape) for absent fields; q_lora_rank: null means q_proj
        int layers = c.Int("num_hidden_layers") ?? 61;
        int experts = c.Int("n_routed_experts") ?? 256;
        int firstDense = c.Int("first_k_dense_replace") ?? 3;
        if (experts > 0 && firstDense < layers)
        {
            // DeepseekV3DecoderLayer: `if layer_idx >= config.first_k_dense_replace: self.mlp = DeepseekV3MoE(config)`
            throw c.Unsupported($"mixture-of-experts (layers {firstDense}..{layers - 1} would route over {experts} experts: "
                + $"first_k_dense_replace {firstDense} < num_hidden_layers {layers}; Headwise runs dense deepseek_v3 layers only)");
        }
        var rope = c.Has("rope_scaling") ? c.Raw("rope_scaling") : c.Has("rope_parameters") ? c.Raw("rope_parameters") : default;
        if (rope.ValueKind == JsonValueKind.Object)
        {
            string kind = rope.TryGetProperty("rope_type", out var rt) ? rt.GetString() ?? "?" :
                rope.TryGetProperty("type", out var t) ? t.GetString() ?? "?" : "default";
            if (kind != "default")
            {
                throw c.Unsupported($"rope_scaling of type '{kind}' for deepseek_v3 (only unscaled RoPE is implemented)");
            }
        }
        double theta = c.Double("rope_theta")
            ?? (rope.ValueKind == JsonValueKind.Object && rope.TryGetProperty("rope_theta", out var th) && th.ValueKind == JsonValueKind.Number ? th.GetDouble() : 10000);
        int heads = c.Int("num_attention_heads") ?? 128;
        int ropeDims = c.Int("qk_rope_head_dim") ?? 64;
        var block = HeadwiseMlaSourceBlock(c, ropeDims);
        string act = c.String("hidden_act") ?? "silu";
        if (act != "silu" && block.Mlp == ActivationFunction.Silu)
        {
            throw c.Unsupported($"hidden_act '{act}' for deepseek_v3 (only the SwiGLU 'silu' MLP is implemented)");
        }
        bool bias = c.Bool("attention_bias") ?? false;
        return (new ModelConfig
        {
            ModelType = "deepseek_v3",
            Family = ArchitectureFamily.DeepseekV3,
            VocabSize = c.Int("vocab_size") ?? 129280,
            DModel = c.Int("hidden_size") ?? 7168,
            NLayers = layers,
            NHeads = heads,
            NKvHeads = c.Int("num_key_value_heads") ?? heads,
            DHead = c.Int("v_head_dim") ?? 128,
            DMlp = c.Int("intermediate_size") ?? 18432,
            MaxPositions = c.Int("max_position_embeddings") ?? 4096,
            NormEps = (float)(c.Double("rms_norm_eps") ?? 1e-6),
            // DeepSeek-V3's own block unless the headwise_mla block describes a GPT-2/GPT-NeoX source's
            Norm = block.Norm,
            Activation = block.Mlp,
            GatedMlp = block.Mlp == ActivationFunction.Silu,
            MlpBias = block.MlpBias,
            Positions = block.Positions,
            ParallelResidual = block.ParallelResidual,
            TiedEmbeddings = c.Bool("tie_word_embeddings") ?? false,
            RopeTheta = theta,
            RotaryDims = ropeDims,
            RopeLayout = (c.Bool("rope_interleave") ?? true) ? RopeLayout.Interleaved : RopeLayout.RotateHalf,
            // attention_bias: q_a_proj and kv_a_proj_with_mqa (QkvBias), o_proj (OutputBias); q_proj, q_b_proj and kv_b_proj never
            QkvBias = bias,
            OutputBias = bias,
            // Headwise's MLA layout keeps a converted Mistral's window (stock DeepSeek-V3 has none)
            SlidingWindow = c.Has("headwise_mla") && c.Raw("headwise_mla").ValueKind == JsonValueKind.Object
                && c.Raw("headwise_mla").TryGetProperty("sliding_window", out var sw) && sw.ValueKind == JsonValueKind.Number ? sw.GetInt32() : 0,
            Mla = new MlaDims(c.IsPresent("q_lora_rank") ? c.Int("q_lora_rank") ?? 0 : 1536, c.Int("kv_lora_rank") ?? 512,
                c.Int("qk_nope_head_dim") ?? 128, ropeDims)
            { Headwise = HeadwiseMlaBlock(c, ropeDims) },
            BosTokenId = c.Int("bos_token_id") ?? 0,
            EosTokenId = c.Int("eos_token_id") ?? 1,
        }, DeepseekV3Fields);
    }

    // the headwise_mla block `convert mla --format headwise` writes (docs/restructure.md); absent in a stock checkpoint
    private static HeadwiseMla? HeadwiseMlaBlock(JsonFields c, int ropeDims)
    {
        if (!c.Has("headwise_mla"))
        {
            return null;
        }
        var b = c.Raw("headwise_mla");
        ModelFormatException Bad(string field, string expected) => c.Bad(field.Length == 0 ? "headwise_mla" : "headwise_mla." + field, expected);
        if (b.ValueKind != JsonValueKind.Object)
        {
            throw Bad("", "an object");
        }
        float scale = b.TryGetProperty("attention_scale", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetSingle() : throw Bad("attention_scale", "a number");
        bool latentNorm = !b.TryGetProperty("latent_norm", out var n) || n.ValueKind != JsonValueKind.False;
        bool queryBias = b.TryGetProperty("q_bias", out var q) && q.ValueKind == JsonValueKind.True;
        int[] freqs = b.TryGetProperty("rope_frequencies", out var f) && f.ValueKind == JsonValueKind.Array
            ? f.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Number ? x.GetInt32() : throw Bad("rope_frequencies", "an array of integers")).ToArray()
            : Enumerable.Range(0, ropeDims / 2).ToArray();
        int sourceDims = b.TryGetProperty("rope_source_dims", out var d) && d.ValueKind == JsonValueKind.Number ? d.GetInt32() : ropeDims;
        return new HeadwiseMla(scale, latentNorm, queryBias, freqs, sourceDims);
    }

    // The block around the attention, when `convert mla --format headwise` came from GPT-2 or GPT-NeoX (docs/restructure.md):
    // headwise_mla.norm "layer_norm" (weights and biases), .mlp "gelu_new"/"gelu" (up_proj → act → down_proj, no gate),
    // .mlp_bias, .positions "learned" (model.embed_positions, no rotary key), .parallel_residual. Absent: DeepSeek-V3's own.
    private readonly record struct MlaSourceBlock(NormKind Norm, ActivationFunction Mlp, bool MlpBias, PositionKind Positions, bool ParallelResidual);

    private static MlaSourceBlock HeadwiseMlaSourceBlock(JsonFields c, int ropeDims)
    {
        var llama = new MlaSourceBlock(NormKind.RmsNorm, ActivationFunction.Silu, false, PositionKind.Rotary, false);
        if (!c.Has("headwise_mla") || c.Raw("headwise_mla").ValueKind != JsonValueKind.Object)
        {
            return llama;
        }
        var b = c.Raw("headwise_mla");
        string? Text(string field) => b.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : throw c.Bad("headwise_mla." + field, "a string") : null;
        bool Flag(string field) => b.TryGetProperty(field, out var v) && v.ValueKind == JsonValueKind.True;
        var norm = Text("norm") switch
        {
            null or "rms_norm" => NormKind.RmsNorm,
            "layer_norm" => NormKind.LayerNorm,
            _ => throw c.Bad("headwise_mla.norm", "\"rms_norm\" or \"layer_norm\""),
        };
        var mlp = Text("mlp") switch
        {
            null or "swiglu" => ActivationFunction.Silu,
            "gelu_new" => ActivationFunction.GeluTanh,
            "gelu" => ActivationFunction.GeluErf,
            _ => throw c.Bad("headwise_mla.mlp", "\"swiglu\", \"gelu_new\" or \"gelu\""),
        };
        var positions = Text("positions") switch
        {
            null or "rotary" => PositionKind.Rotary,
            "learned" => PositionKind.Learned,
            _ => throw c.Bad("headwise_mla.positions", "\"rotary\" or \"learned\""),
        };
        if (positions == PositionKind.Learned && ropeDims != 0)
        {
            throw c.Bad("qk_rope_head_dim", $"0 with headwise_mla.positions \"learned\" (got {ropeDims})");
        }
        return new MlaSourceBlock(norm, mlp, Flag("mlp_bias"), positions, Flag("parallel_residual"));
    }

    // the headwise_shared_attention block `convert share-attention` writes: {"groups": [[4, 5], [6, 7]]} (docs/restructure.md)
    private static SharedAttention SharedAttentionBlock(JsonFields c)
    {
        var b = c.Raw("headwise_shared_attention");
        var error = c.Bad("headwise_shared_attention.groups", "an array of arrays of layer indices, e.g. [[4, 5], [6, 7]]");
        if (b.ValueKind != JsonValueKind.Object || !b.TryGetProperty("groups", out var groups) || groups.ValueKind != JsonValueKind.Array)
        {
            throw error;
        }
        return new SharedAttention([.. groups.EnumerateArray().Select(g => g.ValueKind == JsonValueKind.Array
            ? g.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int l) ? l : throw error).ToArray()
            : throw error)]);
    }

    // the headwise_heads block `convert prune --format headwise` writes:
    // {"query_heads": [3, 4], "kv_heads": [3, 4], "kept": [[0, 2, 3], [0, 1, 2, 3]]} (docs/restructure.md)
    private static LayerHeads LayerHeadsBlock(JsonFields c)
    {
        var b = c.Raw("headwise_heads");
        int[] Counts(JsonElement a, string field) => a.ValueKind == JsonValueKind.Array
            ? [.. a.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int n) ? n : throw c.Bad($"headwise_heads.{field}", "whole numbers"))]
            : throw c.Bad($"headwise_heads.{field}", "an array");
        JsonElement Field(string name) => b.ValueKind == JsonValueKind.Object && b.TryGetProperty(name, out var v) ? v
            : throw c.Bad($"headwise_heads.{name}", "an array with one entry per layer");
        var kept = Field("kept");
        return new LayerHeads(Counts(Field("query_heads"), "query_heads"), Counts(Field("kv_heads"), "kv_heads"),
            kept.ValueKind == JsonValueKind.Array ? [.. kept.EnumerateArray().Select(k => Counts(k, "kept"))] : throw c.Bad("headwise_heads.kept", "an array of arrays"));
    }

    private static readonly ConfigFieldNames VitFields = new("id2label", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "num_attention_heads", "hidden_size / num_attention_heads", "intermediate_size", "(image_size / patch_size)² + 1",
        "layer_norm_eps", "rotary_dims", "sliding_window", DHeadFromWidth: true);

    private static (ModelConfig, ConfigFieldNames) Vit(JsonFields c)
    {
        // HF ViTConfig defaults: hidden_size 768, 12 layers and heads, intermediate_size 3072, hidden_act "gelu",
        // layer_norm_eps 1e-12, image_size 224, patch_size 16, num_channels 3, qkv_bias True
        int d = c.Int("hidden_size") ?? 768;
        int h = c.Int("num_attention_heads") ?? 12;
        int imageSize = c.SquareSize("image_size") ?? 224;
        int patch = c.SquareSize("patch_size") ?? 16;
        if (patch <= 0 || imageSize < patch)
        {
            throw new ModelFormatException($"{c.Path}: patch_size ({patch}) must be positive and at most image_size ({imageSize})");
        }
        var labels = c.Labels();
        var vision = new VisionConfig(imageSize, patch, c.Int("num_channels") ?? 3, labels);
        return (new ModelConfig
        {
            ModelType = "vit",
            Family = ArchitectureFamily.Vit,
            // the classifier's outputs are the "vocabulary" (logits at the CLS position); Vit swaps in d_model without one
            VocabSize = labels.Length,
            DModel = d,
            NLayers = c.Int("num_hidden_layers") ?? 12,
            NHeads = h,
            NKvHeads = h,
            DHead = HeadSize(d, h),
            DMlp = c.Int("intermediate_size") ?? 3072,
            MaxPositions = vision.SequenceLength,
            NormEps = (float)(c.Double("layer_norm_eps") ?? 1e-12),
            Norm = NormKind.LayerNorm,
            Activation = Activation(c, c.String("hidden_act") ?? "gelu"),
            GatedMlp = false,
            Positions = PositionKind.Learned,
            QkvBias = c.Bool("qkv_bias") ?? true,
            OutputBias = true,
            MlpBias = true,
            Bidirectional = true,
            Vision = vision,
        }, VitFields);
    }

    private static ActivationFunction Activation(JsonFields c, string name) => name switch
    {
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => ActivationFunction.GeluTanh,
        "gelu" => ActivationFunction.GeluErf,
        _ => throw c.Unsupported($"activation '{name}' (supported: gelu_new, gelu_pytorch_tanh, gelu)"),
    };

    /// <summary>Typed, null-tolerant access to a config object; wrong types are errors that name the field.</summary>
    private readonly struct JsonFields(JsonElement root, string path)
    {
        public bool Has(string name) => root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

        /// <summary>True when the field is written, even as null (an explicit null can differ from the class default).</summary>
        public bool IsPresent(string name) => root.TryGetProperty(name, out _);

        public JsonElement Raw(string name) => root.GetProperty(name);

        public string? String(string name) => Has(name) ? (root.GetProperty(name).ValueKind == JsonValueKind.String
            ? root.GetProperty(name).GetString() : throw Bad(name, "a string")) : null;

        public int? Int(string name)
        {
            if (!Has(name))
            {
                return null;
            }
            var v = root.GetProperty(name);
            if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0)
            {
                v = v[0]; // eos_token_id may be a list; the first id is the primary one
            }
            return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Bad(name, "an integer");
        }

        public double? Double(string name) => Has(name) ? (root.GetProperty(name).ValueKind == JsonValueKind.Number
            ? root.GetProperty(name).GetDouble() : throw Bad(name, "a number")) : null;

        public bool? Bool(string name) => Has(name) ? root.GetProperty(name).ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(name, "true or false"),
        } : null;

        public string Path => path;

        /// <summary>An image or patch size: an integer, or [height, width] with height = width (the engine's ViT is square).</summary>
        public int? SquareSize(string name)
        {
            if (!Has(name))
            {
                return null;
            }
            var v = root.GetProperty(name);
            if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 2 && v[0].TryGetInt32(out int a) && v[1].TryGetInt32(out int b))
            {
                return a == b ? a : throw Unsupported($"{name} [{a}, {b}] (only square sizes)");
            }
            return Int(name);
        }

        /// <summary>Class names in id order from <c>id2label</c> {"0": "cat", …}; else <c>num_labels</c> (HF default 2)
        /// names LABEL_i, as PretrainedConfig makes them.</summary>
        public string[] Labels()
        {
            if (Has("id2label") && root.GetProperty("id2label").ValueKind == JsonValueKind.Object)
            {
                var pairs = new List<(int Id, string Label)>();
                foreach (var p in root.GetProperty("id2label").EnumerateObject())
                {
                    if (!int.TryParse(p.Name, out int id) || p.Value.ValueKind != JsonValueKind.String)
                    {
                        throw Bad("id2label", "an object of \"id\": \"label\" strings");
                    }
                    pairs.Add((id, p.Value.GetString()!));
                }
                pairs.Sort((x, y) => x.Id.CompareTo(y.Id));
                for (int i = 0; i < pairs.Count; i++)
                {
                    if (pairs[i].Id != i)
                    {
                        throw Bad("id2label", $"ids 0..{pairs.Count - 1} (id {i} is missing)");
                    }
                }
                return [.. pairs.Select(p => p.Label)];
            }
            int n = Int("num_labels") ?? 2;
            return [.. Enumerable.Range(0, Math.Max(n, 0)).Select(i => $"LABEL_{i}")];
        }

        public ModelFormatException Bad(string name, string expected) => new($"{path}: field \"{name}\" should be {expected}");

        public ModelFormatException Unsupported(string what) => new($"{path}: {what} is not supported");
    }
}
