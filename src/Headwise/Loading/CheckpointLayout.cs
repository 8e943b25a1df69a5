namespace Headwise.Loading;

/// <summary>
/// The Hugging Face tensor names and shapes of each family, derived from a config — what a checkpoint of that config must hold.
/// Used to write checkpoints (random models for benchmarks and tests, trained models) that any HF-format reader loads.
/// </summary>
public static class CheckpointLayout
{
    public static IReadOnlyList<(string Name, int[] Shape)> Tensors(ModelConfig c)
    {
        int C = c.DModel, V = c.VocabSize, F = c.DMlp, qd = c.NHeads * c.DHead, kvd = c.NKvHeads * c.DHead;
        var list = new List<(string, int[])>();
        switch (c.Family)
        {
            case ArchitectureFamily.Gpt2:
                list.Add(("transformer.wte.weight", [V, C]));
                list.Add(("transformer.wpe.weight", [c.MaxPositions, C]));
                for (int l = 0; l < c.NLayers; l++)
                {
                    string p = $"transformer.h.{l}.";
                    list.AddRange([
                        (p + "ln_1.weight", [C]), (p + "ln_1.bias", [C]),
                        (p + "attn.c_attn.weight", [C, 3 * C]), (p + "attn.c_attn.bias", [3 * C]),
                        (p + "attn.c_proj.weight", [C, C]), (p + "attn.c_proj.bias", [C]),
                        (p + "ln_2.weight", [C]), (p + "ln_2.bias", [C]),
                        (p + "mlp.c_fc.weight", [C, F]), (p + "mlp.c_fc.bias", [F]),
                        (p + "mlp.c_proj.weight", [F, C]), (p + "mlp.c_proj.bias", [C]),
                    ]);
                }
                list.Add(("transformer.ln_f.weight", [C]));
                list.Add(("transformer.ln_f.bias", [C]));
                if (!c.TiedEmbeddings)
                {
                    list.Add(("lm_head.weight", [V, C]));
                }
                break;
            case ArchitectureFamily.Llama:
                list.Add(("model.embed_tokens.weight", [V, C]));
                for (int l = 0; l < c.NLayers; l++)
                {
                    string p = $"model.layers.{l}.";
                    list.Add((p + "input_layernorm.weight", [C]));
                    list.Add((p + "self_attn.q_proj.weight", [qd, C]));
                    list.Add((p + "self_attn.k_proj.weight", [kvd, C]));
                    list.Add((p + "self_attn.v_proj.weight", [kvd, C]));
                    if (c.QkvBias)
                    {
                        list.AddRange([(p + "self_attn.q_proj.bias", [qd]), (p + "self_attn.k_proj.bias", [kvd]), (p + "self_attn.v_proj.bias", [kvd])]);
                    }
                    list.Add((p + "self_attn.o_proj.weight", [C, qd]));
                    if (c.OutputBias)
                    {
                        list.Add((p + "self_attn.o_proj.bias", [C]));
                    }
                    list.Add((p + "post_attention_layernorm.weight", [C]));
                    list.AddRange([(p + "mlp.gate_proj.weight", [F, C]), (p + "mlp.up_proj.weight", [F, C]), (p + "mlp.down_proj.weight", [C, F])]);
                    if (c.MlpBias)
                    {
                        list.AddRange([(p + "mlp.gate_proj.bias", [F]), (p + "mlp.up_proj.bias", [F]), (p + "mlp.down_proj.bias", [C])]);
                    }
                }
                list.Add(("model.norm.weight", [C]));
                if (!c.TiedEmbeddings)
                {
                    list.Add(("lm_head.weight", [V, C]));
                }
                break;
            case ArchitectureFamily.GptNeoX:
                list.Add(("gpt_neox.embed_in.weight", [V, C]));
                for (int l = 0; l < c.NLayers; l++)
                {
                    string p = $"gpt_neox.layers.{l}.";
                    list.AddRange([
                        (p + "input_layernorm.weight", [C]), (p + "input_layernorm.bias", [C]),
                        (p + "post_attention_layernorm.weight", [C]), (p + "post_attention_layernorm.bias", [C]),
                        (p + "attention.query_key_value.weight", [3 * C, C]),
                    ]);
                    if (c.QkvBias)
                    {
                        list.Add((p + "attention.query_key_value.bias", [3 * C]));
                    }
                    list.Add((p + "attention.dense.weight", [C, C]));
                    if (c.OutputBias)
                    {
                        list.Add((p + "attention.dense.bias", [C]));
                    }
                    list.AddRange([
                        (p + "mlp.dense_h_to_4h.weight", [F, C]), (p + "mlp.dense_h_to_4h.bias", [F]),
                        (p + "mlp.dense_4h_to_h.weight", [C, F]), (p + "mlp.dense_4h_to_h.bias", [C]),
                    ]);
                }
                list.Add(("gpt_neox.final_layer_norm.weight", [C]));
                list.Add(("gpt_neox.final_layer_norm.bias", [C]));
                if (!c.TiedEmbeddings)
                {
                    list.Add(("embed_out.weight", [V, C]));
                }
                break;
        }
        return list;
    }

    /// <summary>Random weights for a config (norm weights 1, biases 0, matrices N(0, std)): for benchmarks and tests.</summary>
    public static WeightSet RandomWeights(ModelConfig c, int seed = 0, float std = 0.02f)
    {
        var rng = new Random(seed);
        var set = new WeightSet($"random {c.ModelType} (seed {seed})");
        foreach (var (name, shape) in Tensors(c))
        {
            int n = shape.Aggregate(1, (a, b) => checked(a * b));
            var data = new float[n];
            bool isNormWeight = shape.Length == 1 && (name.Contains("norm") || name.Contains("ln_")) && name.EndsWith(".weight", StringComparison.Ordinal);
            if (isNormWeight)
            {
                Array.Fill(data, 1f);
            }
            else if (shape.Length > 1)
            {
                for (int i = 0; i < n; i++)
                {
                    data[i] = std * Gaussian(rng);
                }
            }
            set.Add(Weight.FromArray(name, data, shape));
        }
        return set;
    }

    private static float Gaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }

    /// <summary>A GPT-2-small-shaped config (124M parameters): the shape most interpretability results are stated for.</summary>
    public static ModelConfig Gpt2Small => new()
    {
        ModelType = "gpt2",
        Family = ArchitectureFamily.Gpt2,
        VocabSize = 50257,
        DModel = 768,
        NLayers = 12,
        NHeads = 12,
        NKvHeads = 12,
        DHead = 64,
        DMlp = 3072,
        MaxPositions = 1024,
        NormEps = 1e-5f,
        Activation = "gelu_new",
        TiedEmbeddings = true,
        QkvBias = true,
        OutputBias = true,
        MlpBias = true,
        BosTokenId = 50256,
        EosTokenId = 50256,
    };
}
