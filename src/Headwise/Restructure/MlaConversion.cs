using System.Text.Json;
using System.Text.Json.Nodes;
using Headwise.Compute;
using Headwise.Evaluation;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;

namespace Headwise.Restructure;

/// <summary>The checkpoint layout <see cref="MlaConversion"/> writes.</summary>
public enum MlaFormat
{
    /// <summary>A deepseek_v3 directory with a <c>headwise_mla</c> block in config.json (the source's score scale, no
    /// kv_a_layernorm, a query bias, the RoPE frequency of each rotary pair): exact, loadable by Headwise.</summary>
    Headwise,

    /// <summary>A stock Hugging Face DeepSeek-V3 directory (DeepseekV3ForCausalLM): one rotary pair per frequency, the score
    /// scale folded into the query projection, kv_a_layernorm approximated by a constant weight (the latent's RMS on the calibration text).</summary>
    DeepseekV3,
}

/// <summary>One layer of an MLA conversion, on the calibration text. KeyError = Σ‖k_nope − k̂_nope‖² / Σ‖k‖² (the non-rotary
/// keys' reconstruction from the latent, over all key energy); ValueError = Σ‖v − v̂‖² / Σ‖v‖²; JointError = the PCA's own
/// objective (keys balanced against values), which never increases with the rank; NopeKeyEnergy = Σ‖k_nope‖² / Σ‖k‖², the
/// share of key energy that lost RoPE.</summary>
public sealed record MlaLayerReport(int Layer, double KeyError, double ValueError, double JointError, double NopeKeyEnergy);

/// <param name="LatentNormWeights">deepseek_v3 format: the constant each layer's kv_a_layernorm weight was set to.</param>
public sealed record MlaConversionResult(MlaCheckpoint Checkpoint, MlaFormat Format, int KvRank, int RopeDim, IReadOnlyList<MlaLayerReport> Layers,
    float[]? LatentNormWeights);

/// <summary>A converted checkpoint in memory: config.json and the tensors (named as DeepseekV3ForCausalLM names them).</summary>
public sealed class MlaCheckpoint(JsonObject config, List<(string Name, int[] Shape, float[] Data)> tensors)
{
    public JsonObject Config { get; } = config;

    public IReadOnlyList<(string Name, int[] Shape, float[] Data)> Tensors => tensors;

    /// <summary>The engine's model of these weights, exactly what loading the saved directory gives.</summary>
    public TransformerModel ToModel(string source = "converted MLA weights")
    {
        var c = HfConfigReader.Parse(JsonSerializer.SerializeToUtf8Bytes(Config), source + " config");
        c.Validate(source);
        var set = new WeightSet(source);
        foreach (var (name, shape, data) in tensors)
        {
            set.Add(Weight.FromArray(name, data, shape));
        }
        return TransformerModel.Create(c, set);
    }

    /// <summary>Writes config.json and model.safetensors into <paramref name="dir"/>, each atomically.</summary>
    public void Save(string dir, TensorDType dtype = TensorDType.F32)
    {
        Directory.CreateDirectory(dir);
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors.Select(t => (t.Name, t.Shape, (ReadOnlyMemory<float>)t.Data)),
            new Dictionary<string, string> { ["format"] = "pt" }, dtype);
        var json = (JsonObject)Config.DeepClone();
        json["torch_dtype"] = dtype switch { TensorDType.F16 => "float16", TensorDType.BF16 => "bfloat16", _ => "float32" };
        string path = Path.Combine(dir, "config.json"), partial = path + ".partial";
        File.WriteAllText(partial, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(partial, path, overwrite: true);
    }
}

/// <summary>
/// Grouped-query attention → multi-head latent attention [TransMLA]. A GQA layer caches 2·NKV·HD floats per token (keys and
/// values); the MLA layer caches the latent c = x·W_DKV (R floats) and one rotary key shared by all heads, k_rope = RoPE(x·W_KR)
/// (D floats), and reads per head k_nope,h = c·W_UK,h, v_h = c·W_UV,h; score_h = (q_nope,h·k_nope,h + q_rope,h·k_rope)·scale.
///
/// 1. Calibrate: hook_k (before RoPE) and hook_v of every layer on the text.
/// 2. Per RoPE frequency pair p, mix the NKV heads' pairs by the orthogonal NKV×NKV matrix U_p of the principal axes of their
///    keys (component j = Σ_g U_p[j,g]·k_g,p). A real mix across heads of one frequency commutes with RoPE's rotation, so this
///    is exact; its inverse is folded into W_Q (query head h of kv head g reads component j of pair p with weight U_p[j,g]).
/// 3. Keep RoPE on the D/2 (pair, component) slots of most energy (format deepseek_v3: component 0 of every pair, one per
///    frequency, as the stock format's table has); the other key dims lose RoPE (NoPE: the approximation).
/// 4. The NoPE keys (Kn = NKV·HD − D dims, shared by all heads) and the values (NKV·HD) are compressed jointly to rank R by
///    PCA of their activations (second moment; keys scaled to the values' energy so both count): c = [α·k_nope | v]·P,
///    W_UK = P_kᵀ/α, W_UV,h = P_v of h's kv head.
/// At D = NKV·rotary dims and R = 2·NKV·HD − D nothing is dropped: the conversion is exact (the cache is the original's).
/// Families: the Llama family (llama, mistral, qwen2, llama2.c), GPT-NeoX (partial rotary: the dims RoPE never rotates are NoPE
/// from the start) and GPT-2 (learned positions: no rotary dims, D = 0, every key dim in the latent); the last two only in
/// Headwise's layout, which keeps their LayerNorm, GELU MLP with biases, learned positions and parallel residual.
/// </summary>
public static class MlaConversion
{
    /// <summary>The rule of <c>--kv-fraction F</c>: the rotary key keeps the source's share of rotary dims, D = the largest even
    /// number ≤ F·NKV·rotary dims (deepseek_v3 format: D = the rotary dims of one head, what its RoPE table holds), and the
    /// latent takes the rest of the budget, R = ⌊F·2·NKV·HD⌋ − D: R + D ≤ F times the original cache.</summary>
    public static (int KvRank, int RopeDim) RanksFor(ModelConfig c, double fraction, MlaFormat format)
    {
        CheckSource(c, format);
        if (!(fraction > 0 && fraction <= 1))
        {
            throw new InvalidInputException($"--kv-fraction {fraction}: must be more than 0 and at most 1 (the share of the original KV cache to keep)");
        }
        int full = 2 * c.NKvHeads * c.DHead;
        int budget = (int)Math.Floor(fraction * full + 1e-9);
        int rope = format == MlaFormat.DeepseekV3 ? c.RotaryDims : 2 * (int)Math.Floor((fraction * c.NKvHeads * c.RotaryDims / 2) + 1e-9);
        int rank = budget - rope;
        if (rank < 1)
        {
            throw new InvalidInputException($"--kv-fraction {fraction}: a cache of {budget} floats per token and layer (of {full}) leaves no room for a latent "
                + $"beside the {rope} rotary dims; give a larger fraction");
        }
        return (rank, rope);
    }

    /// <summary>Refuses the sources and formats the conversion cannot handle, in one line each.</summary>
    public static void CheckSource(ModelConfig c, MlaFormat format)
    {
        if (c.Family is not (ArchitectureFamily.Llama or ArchitectureFamily.Gpt2 or ArchitectureFamily.GptNeoX))
        {
            throw new InvalidInputException($"convert mla: {c.ModelType} checkpoints are not supported (it converts the Llama family — llama, mistral, qwen2, llama2.c — GPT-2 and GPT-NeoX)");
        }
        if (c.SharedAttention is not null)
        {
            throw new InvalidInputException($"convert mla: the {c.ModelType} model shares attention between layers (headwise_shared_attention); convert the model it was made from");
        }
        if (format == MlaFormat.DeepseekV3 && c.Family != ArchitectureFamily.Llama)
        {
            throw new InvalidInputException($"convert mla --format deepseek_v3: stock DeepSeek-V3 cannot hold a {c.ModelType} model's {StockCannotHold(c)}; use --format headwise (exact)");
        }
        if (format == MlaFormat.DeepseekV3 && c.QkvBias)
        {
            throw new InvalidInputException($"convert mla --format deepseek_v3: the {c.ModelType} model has a query bias, which DeepSeek-V3's query projection cannot hold; use --format headwise");
        }
        if (format == MlaFormat.DeepseekV3 && c.SlidingWindow > 0 && c.SlidingWindow < c.MaxPositions)
        {
            throw new InvalidInputException($"convert mla --format deepseek_v3: the {c.ModelType} model attends a sliding window of {c.SlidingWindow}, which DeepSeek-V3 has not; use --format headwise");
        }
    }

    // what DeepseekV3ForCausalLM has no place for in a GPT-2 or GPT-NeoX model (it has RMSNorm without biases, a SwiGLU MLP
    // without biases, RoPE on every layer's shared key, a sequential residual)
    private static string StockCannotHold(ModelConfig c)
    {
        var parts = new List<string> { "LayerNorm (a bias, mean subtraction)", $"{c.ActivationName} MLP with biases (no gate)" };
        if (c.QkvBias)
        {
            parts.Add("query bias");
        }
        if (c.Positions == PositionKind.Learned)
        {
            parts.Add("learned position embedding");
        }
        if (c.ParallelResidual)
        {
            parts.Add("parallel residual");
        }
        return string.Join(", ", parts[..^1]) + " and " + parts[^1];
    }

    public static MlaConversionResult Convert(TransformerModel model, int kvRank, int ropeDim, int[] calibration, MlaFormat format = MlaFormat.Headwise,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancel = default)
    {
        var c = model.Config;
        CheckSource(c, format);
        int NH = c.NHeads, NKV = c.NKvHeads, HD = c.DHead, C = c.DModel, rot = c.RotaryDims, qPerKv = NH / NKV;
        int maxRope = format == MlaFormat.DeepseekV3 ? rot : NKV * rot;
        if (ropeDim < 0 || ropeDim % 2 != 0 || ropeDim > maxRope || (format == MlaFormat.DeepseekV3 && ropeDim != rot))
        {
            throw new InvalidInputException(format == MlaFormat.DeepseekV3
                ? $"--rope-dim {ropeDim}: the deepseek_v3 format's rotary key holds each of the source's frequencies once: {rot}"
                : $"--rope-dim {ropeDim}: must be even, 0 to {maxRope} (the source's {NKV} kv heads × {rot} rotary dims)");
        }
        int Kn = NKV * HD - ropeDim, maxRank = Kn + NKV * HD;
        if (kvRank < 1 || kvRank > maxRank)
        {
            throw new InvalidInputException($"--kv-rank {kvRank}: must be 1 to {maxRank} (the {Kn} non-rotary key dims and {NKV * HD} value dims it compresses)");
        }
        if (calibration.Length < 2)
        {
            throw new InvalidInputException($"the calibration text has {calibration.Length} token(s); it needs at least 2");
        }
        int T = Math.Min(calibration.Length, c.MaxPositions), R = kvRank, D = ropeDim, QK = Kn + D;
        var (_, cache) = model.RunWithCache(ModelInput.Single(calibration[..T]),
            n => n.EndsWith("attn.hook_k", StringComparison.Ordinal) || n.EndsWith("attn.hook_v", StringComparison.Ordinal));
        var src = model.ToCanonical();
        bool attentionBias = c.QkvBias || c.OutputBias; // DeepSeek's attention_bias: biases on kv_a_proj_with_mqa and the output projection
        // stock DeepSeek scales scores by qk_head_dim^-½: the source's 1/√HD is kept by scaling the queries
        float qScale = format == MlaFormat.DeepseekV3 ? MathF.Sqrt(QK) / MathF.Sqrt(HD) : 1f;

        var reports = new List<MlaLayerReport>();
        var attention = new DeepseekV3.MlaAttentionTensors[c.NLayers];
        var latentNorm = format == MlaFormat.DeepseekV3 ? new float[c.NLayers] : null;
        int[]? frequencies = null;
        for (int l = 0; l < c.NLayers; l++)
        {
            cancel.ThrowIfCancellationRequested();
            var k = cache[new HookPoint(l, HookKind.K).Name].Data; // (1, T, NKV, HD), before RoPE, with the bias
            var v = cache[new HookPoint(l, HookKind.V).Name].Data;
            var a = src.Layers[l].Attention;
            var layer = ConvertLayer(c, a, k, v, T, R, D, format, qScale, attentionBias);
            frequencies ??= layer.Frequencies;
            if (latentNorm is not null)
            {
                // kv_a_layernorm cannot be undone exactly; a constant weight s = the latent's RMS on the text makes it the
                // identity for a token whose latent has the typical RMS (docs/restructure.md)
                latentNorm[l] = (float)layer.LatentRms;
            }
            attention[l] = new DeepseekV3.MlaAttentionTensors(layer.Wq, layer.Bq, layer.WkvA, attentionBias ? layer.BkvA : null,
                latentNorm is null ? null : Enumerable.Repeat(latentNorm[l], R).ToArray(), layer.WkvB,
                attentionBias ? a.BO ?? new float[C] : null);
            reports.Add(layer.Report with { Layer = l });
            progress?.Report((l + 1, c.NLayers));
        }
        var config = Config(c, R, D, Kn, format, attentionBias, frequencies ?? []);
        var tensors = DeepseekV3.MlaCheckpointTensors(src, attention, R, D, Kn);
        return new MlaConversionResult(new MlaCheckpoint(config, tensors), format, R, D, reports, latentNorm);
    }

    /// <summary>Mean NLL (nats/token) of <paramref name="model"/> on the first context's worth of <paramref name="ids"/>.</summary>
    public static double Nll(TransformerModel model, int[] ids)
    {
        int T = Math.Min(ids.Length, model.Config.MaxPositions);
        return Perplexity.Evaluate(model, ids[..T], T, T).MeanNll;
    }

    /// <summary>deepseek_v3 format: the same weights with kv_a_layernorm left out (and the folded scale kept), i.e. what the
    /// conversion computes before the stock format's approximation — the model whose NLL the approximation is measured against.</summary>
    public static MlaCheckpoint WithoutLatentNorm(MlaConversionResult r)
    {
        var config = (JsonObject)r.Checkpoint.Config.DeepClone();
        int QK = (int)config["qk_nope_head_dim"]! + (int)config["qk_rope_head_dim"]!;
        config["headwise_mla"] = new JsonObject
        {
            ["attention_scale"] = 1 / Math.Sqrt(QK),
            ["latent_norm"] = false,
        };
        var tensors = r.Checkpoint.Tensors.Where(t => !t.Name.EndsWith("kv_a_layernorm.weight", StringComparison.Ordinal)).ToList();
        return new MlaCheckpoint(config, tensors);
    }

    private sealed record LayerResult(float[] Wq, float[]? Bq, float[] WkvA, float[] BkvA, float[] WkvB, int[] Frequencies, double LatentRms, MlaLayerReport Report);

    // One key dim of the converted layer: Σ coef · (source kv head G's key dim D)
    private readonly record struct Term(int G, int D, double Coef);

    private static LayerResult ConvertLayer(ModelConfig c, AttentionWeights a, float[] k, float[] v, int T, int R, int D, MlaFormat format, float qScale, bool attentionBias)
    {
        int NH = c.NHeads, NKV = c.NKvHeads, HD = c.DHead, C = c.DModel, rot = c.RotaryDims, qPerKv = NH / NKV;
        int pairs = rot / 2, Kn = NKV * HD - D, QK = Kn + D, Wz = Kn + NKV * HD;
        (int A, int B) Dims(int p) => c.RopeLayout == RopeLayout.RotateHalf ? (p, p + pairs) : (2 * p, 2 * p + 1);
        double K(int t, int g, int d) => k[(t * NKV + g) * HD + d];

        // 2. per frequency pair: the principal axes of the NKV heads' keys, both dims of the pair as samples (a real, orthogonal mix)
        var mix = new double[pairs][,];
        var slots = new List<(int P, int J, double Energy)>();
        for (int p = 0; p < pairs; p++)
        {
            var (da, db) = Dims(p);
            var m = Matrix<double>.Build.Dense(NKV, NKV);
            for (int g = 0; g < NKV; g++)
            {
                for (int h = 0; h < NKV; h++)
                {
                    double s = 0;
                    for (int t = 0; t < T; t++)
                    {
                        s += K(t, g, da) * K(t, h, da) + K(t, g, db) * K(t, h, db);
                    }
                    m[g, h] = s;
                }
            }
            var evd = m.Evd(Symmetricity.Symmetric);
            var order = Enumerable.Range(0, NKV).OrderByDescending(i => evd.EigenValues[i].Real).ToArray();
            mix[p] = new double[NKV, NKV];
            for (int j = 0; j < NKV; j++)
            {
                for (int g = 0; g < NKV; g++)
                {
                    mix[p][j, g] = evd.EigenVectors[g, order[j]]; // U_p[j, g]: component j = Σ_g U_p[j, g]·k_g
                }
                slots.Add((p, j, evd.EigenValues[order[j]].Real));
            }
        }

        // 3. the slots that keep RoPE, ordered component-major so the rotary key reads like heads of the source's frequencies
        var kept = (format == MlaFormat.DeepseekV3 ? slots.Where(s => s.J == 0)
            : slots.OrderByDescending(s => s.Energy).ThenBy(s => s.J).ThenBy(s => s.P).Take(D / 2))
            .OrderBy(s => s.J).ThenBy(s => s.P).ToList();
        var keptSet = kept.Select(s => (s.P, s.J)).ToHashSet();
        Term[] Slot(int p, int j, int dim) => [.. Enumerable.Range(0, NKV).Select(g => new Term(g, dim, mix[p][j, g]))];
        var rope = new List<Term[]>();
        foreach (var s in kept)
        {
            rope.Add(Slot(s.P, s.J, Dims(s.P).A));
            rope.Add(Slot(s.P, s.J, Dims(s.P).B));
        }
        var nope = new List<Term[]>();
        foreach (var s in slots.Where(s => !keptSet.Contains((s.P, s.J))))
        {
            nope.Add(Slot(s.P, s.J, Dims(s.P).A));
            nope.Add(Slot(s.P, s.J, Dims(s.P).B));
        }
        for (int g = 0; g < NKV; g++)
        {
            for (int d = rot; d < HD; d++)
            {
                nope.Add([new Term(g, d, 1)]); // dims RoPE never rotated (partial rotary) are NoPE already
            }
        }

        // 4. joint PCA of [α·k_nope | v] over the text: Z (T, Wz)
        var z = new double[T, Wz];
        double keyEnergy = 0, nopeEnergy = 0, valueEnergy = 0;
        for (int t = 0; t < T; t++)
        {
            for (int g = 0; g < NKV; g++)
            {
                for (int d = 0; d < HD; d++)
                {
                    keyEnergy += K(t, g, d) * K(t, g, d);
                    double x = v[(t * NKV + g) * HD + d];
                    z[t, Kn + g * HD + d] = x;
                    valueEnergy += x * x;
                }
            }
            for (int i = 0; i < Kn; i++)
            {
                double x = 0;
                foreach (var term in nope[i])
                {
                    x += term.Coef * K(t, term.G, term.D);
                }
                z[t, i] = x;
                nopeEnergy += x * x;
            }
        }
        double alpha = nopeEnergy > 0 && valueEnergy > 0 ? Math.Sqrt(valueEnergy / nopeEnergy) : 1;
        var zm = Matrix<double>.Build.Dense(T, Wz, (t, i) => i < Kn ? alpha * z[t, i] : z[t, i]);
        var second = zm.TransposeThisAndMultiply(zm);
        var pca = second.Evd(Symmetricity.Symmetric);
        var top = Enumerable.Range(0, Wz).OrderByDescending(i => pca.EigenValues[i].Real).Take(R).ToArray();
        var P = Matrix<double>.Build.Dense(Wz, R, (i, r) => pca.EigenVectors[i, top[r]]); // orthonormal columns

        // reconstruction on the text: latent c = z̃·P, ẑ = c·Pᵀ
        var latent = zm * P;
        var residual = zm - latent * P.Transpose();
        double keyErr = 0, valueErr = 0, joint = 0, total = 0;
        for (int t = 0; t < T; t++)
        {
            for (int i = 0; i < Wz; i++)
            {
                double e = residual[t, i] * residual[t, i];
                joint += e;
                total += zm[t, i] * zm[t, i];
                if (i < Kn)
                {
                    keyErr += e / (alpha * alpha);
                }
                else
                {
                    valueErr += e;
                }
            }
        }
        double latentRms = Math.Sqrt(latent.Enumerate().Sum(x => x * x) / Math.Max(1, T * R));

        // the new projections as rows over [x, 1]: row C is the bias
        double KeyRow(Term[] terms, int row) => terms.Sum(t => t.Coef * (row < C ? a.WK[(t.G * C + row) * HD + t.D] : a.BK?[t.G * HD + t.D] ?? 0));
        double ValueRow(int g, int d, int row) => row < C ? a.WV[(g * C + row) * HD + d] : a.BV?[g * HD + d] ?? 0;
        double QueryRow(Term[] terms, int h, int row) => terms.Where(t => t.G == h / qPerKv)
            .Sum(t => t.Coef * (row < C ? a.WQ[(h * C + row) * HD + t.D] : a.BQ?[h * HD + t.D] ?? 0));

        // the query projection (NH·QK, C): head h's rows [q_nope (Kn) | q_rope (D)], the mix folded in
        var wq = new float[NH * QK * C];
        float[]? bq = format == MlaFormat.Headwise && a.BQ is not null ? new float[NH * QK] : null;
        for (int h = 0; h < NH; h++)
        {
            for (int i = 0; i < QK; i++)
            {
                var terms = i < Kn ? nope[i] : rope[i - Kn];
                for (int row = 0; row < C; row++)
                {
                    wq[(h * QK + i) * C + row] = (float)(qScale * QueryRow(terms, h, row));
                }
                if (bq is not null)
                {
                    bq[h * QK + i] = (float)QueryRow(terms, h, C);
                }
            }
        }

        // kv_a_proj_with_mqa (R + D, C): rows [latent = z̃·P | k_rope]; the bias row likewise
        var wkvA = new float[(R + D) * C];
        var bkvA = new float[R + D];
        var zRow = new double[C + 1];
        for (int i = 0; i < Wz; i++)
        {
            for (int row = 0; row <= C; row++)
            {
                zRow[row] = i < Kn ? alpha * KeyRow(nope[i], row) : ValueRow((i - Kn) / HD, (i - Kn) % HD, row);
            }
            for (int r = 0; r < R; r++)
            {
                double w = P[i, r];
                for (int row = 0; row < C; row++)
                {
                    wkvA[r * C + row] += (float)(w * zRow[row]);
                }
                bkvA[r] += (float)(w * zRow[C]);
            }
        }
        for (int i = 0; i < D; i++)
        {
            for (int row = 0; row < C; row++)
            {
                wkvA[(R + i) * C + row] = (float)KeyRow(rope[i], row);
            }
            bkvA[R + i] = (float)KeyRow(rope[i], C);
        }
        if (!attentionBias)
        {
            Array.Clear(bkvA);
        }

        // kv_b_proj (NH·(Kn + HD), R): head h's rows [W_UK = P_kᵀ/α (Kn, R) | W_UV = P_v of kv head h/qPerKv (HD, R)]
        var wkvB = new float[NH * (Kn + HD) * R];
        for (int h = 0; h < NH; h++)
        {
            int g = h / qPerKv;
            for (int i = 0; i < Kn + HD; i++)
            {
                int zi = i < Kn ? i : Kn + g * HD + (i - Kn);
                double s = i < Kn ? 1 / alpha : 1;
                for (int r = 0; r < R; r++)
                {
                    wkvB[(h * (Kn + HD) + i) * R + r] = (float)(s * P[zi, r]);
                }
            }
        }

        var report = new MlaLayerReport(0, keyEnergy == 0 ? 0 : keyErr / keyEnergy, valueEnergy == 0 ? 0 : valueErr / valueEnergy,
            total == 0 ? 0 : joint / total, keyEnergy == 0 ? 0 : nopeEnergy / keyEnergy);
        return new LayerResult(wq, bq, wkvA, bkvA, wkvB, [.. kept.Select(s => s.P)], latentRms, report);
    }

    // config.json: a deepseek_v3 config with dense layers only, plus (format headwise) the headwise_mla block
    private static JsonObject Config(ModelConfig c, int R, int D, int Kn, MlaFormat format, bool attentionBias, int[] frequencies)
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray("DeepseekV3ForCausalLM"),
            ["model_type"] = "deepseek_v3",
            ["vocab_size"] = c.VocabSize,
            ["hidden_size"] = c.DModel,
            ["intermediate_size"] = c.DMlp,
            ["num_hidden_layers"] = c.NLayers,
            ["num_attention_heads"] = c.NHeads,
            ["num_key_value_heads"] = c.NHeads,
            // every layer dense: no mixture of experts
            ["first_k_dense_replace"] = c.NLayers,
            ["n_routed_experts"] = 0,
            ["n_shared_experts"] = 0,
            ["q_lora_rank"] = null,
            ["kv_lora_rank"] = R,
            ["qk_nope_head_dim"] = Kn,
            ["qk_rope_head_dim"] = D,
            ["v_head_dim"] = c.DHead,
            ["hidden_act"] = "silu",
            ["max_position_embeddings"] = c.MaxPositions,
            ["rms_norm_eps"] = c.NormEps,
            ["rope_theta"] = c.RopeTheta,
            ["rope_scaling"] = null,
            ["rope_interleave"] = true,
            ["attention_bias"] = attentionBias,
            ["attention_dropout"] = 0.0,
            ["tie_word_embeddings"] = c.TiedEmbeddings,
            ["bos_token_id"] = c.BosTokenId,
            ["eos_token_id"] = c.EosTokenId,
            ["use_cache"] = true,
            ["torch_dtype"] = "float32",
        };
        if (c.Family != ArchitectureFamily.Llama)
        {
            o["hidden_act"] = c.ActivationName; // what the MLP applies (headwise_mla.mlp), not DeepSeek-V3's silu
        }
        if (format == MlaFormat.Headwise)
        {
            var block = new JsonObject
            {
                ["source_model_type"] = c.ModelType,
                ["attention_scale"] = 1 / Math.Sqrt(c.DHead),
                ["latent_norm"] = false,
                ["q_bias"] = c.QkvBias,
                ["rope_frequencies"] = new JsonArray([.. frequencies.Select(f => (JsonNode)f)]),
                ["rope_source_dims"] = c.RotaryDims,
            };
            if (c.SlidingWindow > 0)
            {
                block["sliding_window"] = c.SlidingWindow;
            }
            if (c.Family != ArchitectureFamily.Llama)
            {
                // a GPT-2/GPT-NeoX source's block around the attention: what stock DeepSeek-V3 cannot say (docs/restructure.md)
                block["norm"] = c.Norm == NormKind.LayerNorm ? "layer_norm" : "rms_norm";
                block["mlp"] = c.GatedMlp ? "swiglu" : c.ActivationName;
                block["mlp_bias"] = c.MlpBias;
                block["positions"] = c.Positions == PositionKind.Learned ? "learned" : "rotary";
                block["parallel_residual"] = c.ParallelResidual;
            }
            o["headwise_mla"] = block;
        }
        return o;
    }
}
