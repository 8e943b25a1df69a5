using Headwise.Loading;

namespace Headwise.Training;

// Export to a Hugging Face checkpoint: GPT2LMHeadModel or LlamaForCausalLM names and shapes (CheckpointLayout.Tensors).
// What HF cannot express is refused with InvalidInputException: a combined W_OV, a model without norms, and for GPT-2
// grouped key/value heads or NH·HD ≠ C, and a Llama without RoPE. An attention-only model is exported exactly, as a model
// whose MLP has width 1 and zero weights (its output is then exactly 0 in both families); a GPT-2 without biases or
// without positions gets zero biases / a zero position table, and fixed one-hot embeddings become a tied identity wte.
public sealed partial class TrainableTransformer
{
    /// <summary>Null when the model can be written as a Hugging Face checkpoint, else the reason it cannot.</summary>
    public string? HfExportBlocker
    {
        get
        {
            if (Config.CombinedOV) return "a combined W_OV per head has no Hugging Face equivalent";
            if (!Config.UseNorm) return "a model without LayerNorm/RMSNorm has no Hugging Face equivalent";
            if (_gpt2 && NKV != NH) return "GPT-2 checkpoints cannot hold grouped key/value heads (use --arch llama)";
            if (_gpt2 && NH * HD != C) return "GPT-2 checkpoints need heads × head size = d_model";
            if (!_gpt2 && !Config.UsePositions) return "a Llama checkpoint always applies RoPE (the model was trained without positions)";
            return null;
        }
    }

    /// <summary>The engine's config for the exported checkpoint.</summary>
    public ModelConfig ToModelConfig()
    {
        if (HfExportBlocker is string why) throw new InvalidInputException($"cannot export to Hugging Face format: {why}");
        int f = Config.AttentionOnly ? 1 : F;
        return _gpt2
            ? new ModelConfig
            {
                ModelType = "gpt2",
                Family = ArchitectureFamily.Gpt2,
                VocabSize = V,
                DModel = C,
                NLayers = L,
                NHeads = NH,
                NKvHeads = NH,
                DHead = HD,
                DMlp = f,
                MaxPositions = Config.SeqLen,
                NormEps = Config.NormEps,
                Activation = "gelu_new",
                TiedEmbeddings = Config.TiedEmbeddings || _oneHot,
                QkvBias = true,
                OutputBias = true,
                MlpBias = true,
            }
            : new ModelConfig
            {
                ModelType = "llama",
                Family = ArchitectureFamily.Llama,
                VocabSize = V,
                DModel = C,
                NLayers = L,
                NHeads = NH,
                NKvHeads = NKV,
                DHead = HD,
                DMlp = f,
                MaxPositions = Config.SeqLen,
                NormEps = Config.NormEps,
                Activation = "silu",
                TiedEmbeddings = Config.TiedEmbeddings || _oneHot,
                RopeTheta = Config.RopeTheta,
                RotaryDims = HD,
            };
    }

    /// <summary>The weights under their Hugging Face names, in <see cref="CheckpointLayout.Tensors"/> order.</summary>
    public IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> ToHfTensors()
    {
        var c = ToModelConfig();
        var map = new Dictionary<string, float[]>(StringComparer.Ordinal);
        // absent parameters of an exactly expressible option: biases 0, positions 0, one-hot embedding = identity
        float[] Get(string name) => _byName.ContainsKey(name) ? Param(name).ToArray() : name switch
        {
            "wte" => (float[])_eye.Clone(),
            "wpe" => new float[Config.SeqLen * C],
            _ when name.EndsWith(".b_qkv", StringComparison.Ordinal) => new float[QKV],
            _ when name.EndsWith(".b_in", StringComparison.Ordinal) => new float[F],
            _ when name.EndsWith(".b_o", StringComparison.Ordinal) || name.EndsWith(".b_out", StringComparison.Ordinal) => new float[C],
            _ => throw new InvalidOperationException($"export: no parameter '{name}'"),
        };
        float[] Rows(string name, int start, int count) => Param(name).Slice(start * C, count * C).ToArray();
        int fw = c.DMlp;
        if (_gpt2)
        {
            map["transformer.wte.weight"] = Get("wte");
            map["transformer.wpe.weight"] = Get("wpe");
            for (int l = 0; l < L; l++)
            {
                string p = $"transformer.h.{l}.", q = $"blocks.{l}.";
                map[p + "ln_1.weight"] = Get(q + "ln1.weight");
                map[p + "ln_1.bias"] = Get(q + "ln1.bias");
                // GPT-2's Conv1D stores (in, out): the transpose of our (out, in)
                map[p + "attn.c_attn.weight"] = Transposed(Param(q + "attn.w_qkv"), QKV, C);
                map[p + "attn.c_attn.bias"] = Get(q + "attn.b_qkv");
                map[p + "attn.c_proj.weight"] = Transposed(Param(q + "attn.w_o"), C, NH * HD);
                map[p + "attn.c_proj.bias"] = Get(q + "attn.b_o");
                if (Config.AttentionOnly)
                {
                    map[p + "ln_2.weight"] = Ones(C);
                    map[p + "ln_2.bias"] = new float[C];
                    map[p + "mlp.c_fc.weight"] = new float[C * fw];
                    map[p + "mlp.c_fc.bias"] = new float[fw];
                    map[p + "mlp.c_proj.weight"] = new float[fw * C];
                    map[p + "mlp.c_proj.bias"] = new float[C];
                    continue;
                }
                map[p + "ln_2.weight"] = Get(q + "ln2.weight");
                map[p + "ln_2.bias"] = Get(q + "ln2.bias");
                map[p + "mlp.c_fc.weight"] = Transposed(Param(q + "mlp.w_in"), F, C);
                map[p + "mlp.c_fc.bias"] = Get(q + "mlp.b_in");
                map[p + "mlp.c_proj.weight"] = Transposed(Param(q + "mlp.w_out"), C, F);
                map[p + "mlp.c_proj.bias"] = Get(q + "mlp.b_out");
            }
            map["transformer.ln_f.weight"] = Get("ln_f.weight");
            map["transformer.ln_f.bias"] = Get("ln_f.bias");
        }
        else
        {
            map["model.embed_tokens.weight"] = Get("wte");
            for (int l = 0; l < L; l++)
            {
                string p = $"model.layers.{l}.", q = $"blocks.{l}.";
                map[p + "input_layernorm.weight"] = Get(q + "ln1.weight");
                map[p + "self_attn.q_proj.weight"] = Rows(q + "attn.w_qkv", 0, NH * HD);
                map[p + "self_attn.k_proj.weight"] = Rows(q + "attn.w_qkv", NH * HD, NKV * HD);
                map[p + "self_attn.v_proj.weight"] = Rows(q + "attn.w_qkv", QK, NKV * HD);
                map[p + "self_attn.o_proj.weight"] = Get(q + "attn.w_o");
                bool ao = Config.AttentionOnly;
                map[p + "post_attention_layernorm.weight"] = ao ? Ones(C) : Get(q + "ln2.weight");
                map[p + "mlp.gate_proj.weight"] = ao ? new float[fw * C] : Get(q + "mlp.w_gate");
                map[p + "mlp.up_proj.weight"] = ao ? new float[fw * C] : Get(q + "mlp.w_up");
                map[p + "mlp.down_proj.weight"] = ao ? new float[C * fw] : Get(q + "mlp.w_out");
            }
            map["model.norm.weight"] = Get("ln_f.weight");
        }
        if (!Config.TiedEmbeddings && !_oneHot) map["lm_head.weight"] = Get("w_u");
        return CheckpointLayout.Tensors(c).Select(t => (t.Name, t.Shape, (ReadOnlyMemory<float>)map[t.Name])).ToList();
    }

    /// <summary>Writes config.json + model.safetensors (float32) into <paramref name="dir"/>, each file atomically.</summary>
    public void SaveHf(string dir)
    {
        var c = ToModelConfig();
        var tensors = ToHfTensors();
        Directory.CreateDirectory(dir);
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        HfConfigWriter.Write(c, Path.Combine(dir, "config.json"));
    }

    private static float[] Transposed(ReadOnlySpan<float> a, int rows, int cols)
    {
        var t = new float[rows * cols];
        Layers.Linear.Transpose(a, t, rows, cols);
        return t;
    }

    private static float[] Ones(int n)
    {
        var a = new float[n];
        Array.Fill(a, 1f);
        return a;
    }
}
