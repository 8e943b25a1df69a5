using System.Text;
using Headwise.Analysis.Vision;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Benchmarks;

/// <summary>Images/s of one ViT at batch <paramref name="Batch"/> (forwards only; median after a warm-up).</summary>
public sealed record VitSpeed(string Model, int ImageSize, int Tokens, int Batch, double SecondsPerForward, double ImagesPerSecond);

/// <summary>A token-pruning forward [Adaptive Sparse ViT] against the unpruned one, timed in the same run.</summary>
public sealed record VitPruningSpeed(double Keep, double TokensKept, double ImagesPerSecond, double Speedup);

/// <summary>A Sparsifiner forward (key selection + the gathered kernel) against the dense one, timed in the same run; the
/// hooked reference path's speed-up (every score computed, then masked) where measured; and the attention alone — one
/// layer's selection and gathered attention against the dense blocked kernel — on the same shape.</summary>
public sealed record VitSparsifinerSpeed(string Model, int Tokens, int KeysPerQuery, int Rank, double Density, double ImagesPerSecond, double Speedup,
    double? HookedSpeedup, double AttentionSpeedup);

public sealed record VitBenchResult(VitSpeed? Mnist, VitSpeed? MnistBatched, IReadOnlyList<VitSparsifinerSpeed> Sparsifiner, VitSpeed Base,
    IReadOnlyList<VitPruningSpeed> Pruning);

/// <summary>
/// ViT speed: the bundled MNIST ViT (models/mnist-vit, when found) at batch 1 and 64, with Sparsifiner attention at a few
/// densities; a ViT-Base/16-shaped model (12 layers, 12 heads, d_model 768, MLP 3072, 224×224 RGB, 1,000 labels; random
/// weights built in memory) at batch 1, unpruned and with token pruning at a few KEEP values.
/// </summary>
public static class VitBenchmark
{
    public static VitBenchResult Run(string? mnistDir, bool quick, int reps, CancellationToken cancel = default, Action<string>? progress = null)
    {
        VitSpeed? mnist = null, batched = null;
        var sparse = new List<VitSparsifinerSpeed>();
        if (mnistDir is not null)
        {
            progress?.Invoke($"the MNIST ViT ({mnistDir})");
            using var loaded = ModelLoader.Load(mnistDir);
            var m = loaded.Model;
            mnist = Speed("mnist-vit", m, 1, reps * 10, cancel);
            batched = Speed("mnist-vit", m, 64, reps, cancel);
            var dense = RandomImage(m.Config.Vision!, 1, 3);
            sparse.AddRange(SparsifinerSpeeds("mnist-vit", m, dense, reps * 10, hooked: true, cancel));
        }
        progress?.Invoke(quick ? "a 2-layer ViT-Base/16-shaped model (random)" : "a ViT-Base/16-shaped model (random, 86M parameters)");
        var vit = RandomVit(quick ? 2 : 12);
        var baseSpeed = Speed(quick ? "vit-base-16 shape, 2 layers (random)" : "vit-base-16 shape (random)", vit, 1, reps, cancel);
        var image = RandomImage(vit.Config.Vision!, 1, 5);
        var pruning = new List<VitPruningSpeed>();
        int[] layers = TokenPruning.DefaultLayers(vit.Config.NLayers);
        double full = ModelBenchmarks.Median(reps, () => vit.ForwardPruned(image, new TokenPruning(layers, 1.0)), cancel);
        foreach (double keep in new[] { 1.0, 0.7, 0.5 })
        {
            progress?.Invoke($"token pruning, keep {keep}");
            var plan = new TokenPruning(layers, keep);
            double s = keep == 1.0 ? full : ModelBenchmarks.Median(reps, () => vit.ForwardPruned(image, plan), cancel);
            double kept = vit.ForwardPruned(image, plan).TokensPerLayer.Average() / image.SeqLen;
            pruning.Add(new VitPruningSpeed(keep, kept, 1 / s, full / s));
        }
        progress?.Invoke("Sparsifiner on the ViT-Base shape");
        sparse.AddRange(SparsifinerSpeeds(baseSpeed.Model, vit, image, reps, hooked: false, cancel));
        vit.Dispose();
        return new VitBenchResult(mnist, batched, sparse, baseSpeed, pruning);
    }

    // Sparsifiner at 1/2 and 1/4 of the keys per query (default rank) against the dense forward of the same model
    private static IEnumerable<VitSparsifinerSpeed> SparsifinerSpeeds(string name, TransformerModel m, ModelInput image, int reps, bool hooked,
        CancellationToken cancel)
    {
        int T = image.SeqLen, NH = m.Config.NHeads, HD = m.Config.DHead;
        var r = new Random(7);
        float[] Random(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1))];
        float[] q = Random(T * NH * HD), k = Random(T * NH * HD), v = Random(T * NH * HD), z = new float[T * NH * HD];
        float scale = 1 / MathF.Sqrt(HD);
        double plain = ModelBenchmarks.Median(reps, () => m.Forward(image), cancel);
        // attention alone, one layer: the dense blocked kernel (bidirectional: every key) against selection + gathered
        double denseAttention = ModelBenchmarks.Median(reps * 10, () => Compute.Kernels.BlockedAttention(q, k, v, z, T, T, NH, NH, HD, T, scale,
            default, 0, Compute.AttentionSparsity.Dense), cancel);
        foreach (int keys in new[] { T / 2, T / 4 })
        {
            var s = new Sparsifiner(m, new SparsifinerPlan(keys, SparsifinerPlan.DefaultRank(HD)));
            var chosen = new int[NH * T * keys];
            double gathered = ModelBenchmarks.Median(reps * 10, () =>
            {
                s.Select(0, q, k, T, T, keys, chosen);
                Compute.Kernels.GatheredAttention(q, k, v, chosen, z, T, T, NH, NH, HD, keys, scale);
            }, cancel);
            double? hookedSpeedup = null;
            if (hooked)
            {
                var hooks = new HookSet(m.Config.NLayers);
                s.Install(hooks, T);
                hookedSpeedup = plain / ModelBenchmarks.Median(reps, () => m.Forward(image, hooks), cancel);
            }
            m.KeySelection = s;
            double fast;
            try
            {
                fast = ModelBenchmarks.Median(reps, () => m.Forward(image), cancel);
            }
            finally
            {
                m.KeySelection = null;
            }
            yield return new VitSparsifinerSpeed(name, T, keys, s.Plan.Rank, s.Plan.Density(T), image.Batch / fast, plain / fast, hookedSpeedup, denseAttention / gathered);
        }
    }

    private static VitSpeed Speed(string name, TransformerModel model, int batch, int reps, CancellationToken cancel)
    {
        var vision = model.Config.Vision!;
        var input = RandomImage(vision, batch, 1);
        double s = ModelBenchmarks.Median(reps, () => model.Forward(input), cancel);
        return new VitSpeed(name, vision.ImageSize, vision.SequenceLength, batch, s, batch / s);
    }

    private static ModelInput RandomImage(VisionConfig vision, int batch, int seed)
    {
        var r = new Random(seed);
        var data = new float[batch * vision.Channels * vision.ImageSize * vision.ImageSize];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(r.NextDouble() * 2 - 1);
        return ModelInput.Image(new ImagePixels(data, batch, vision.Channels, vision.ImageSize, vision.ImageSize), vision);
    }

    /// <summary>A ViT-Base/16-shaped ViTForImageClassification (d_model 768, 12 heads, MLP 3072, 224×224 RGB, 1,000
    /// labels) with <paramref name="layers"/> layers and random weights (uniform, σ ≈ 0.02; LayerNorm γ = 1), in memory.</summary>
    public static Vit RandomVit(int layers = 12, int seed = 1)
    {
        const int C = 768, F = 3072, p = 16, G = 14, ch = 3, labels = 1000;
        string id2label = string.Join(", ", Enumerable.Range(0, labels).Select(i => $"\"{i}\": \"class {i}\""));
        string json = $$$"""
            {"model_type": "vit", "hidden_size": {{{C}}}, "num_hidden_layers": {{{layers}}}, "num_attention_heads": 12,
             "intermediate_size": {{{F}}}, "image_size": 224, "patch_size": {{{p}}}, "num_channels": {{{ch}}}, "qkv_bias": true,
             "hidden_act": "gelu", "layer_norm_eps": 1e-12, "id2label": {{{{id2label}}}}}
            """;
        var config = HfConfigReader.Parse(Encoding.UTF8.GetBytes(json), "random-vit-base/config.json");
        var w = new WeightSet("random ViT-Base/16");
        var r = new Random(seed);
        void Add(string name, bool ones, params int[] shape)
        {
            var data = new float[shape.Aggregate(1, (a, b) => a * b)];
            if (ones) Array.Fill(data, 1f);
            else if (shape.Length > 1 || name.Contains("embeddings", StringComparison.Ordinal))
            {
                for (int i = 0; i < data.Length; i++) data[i] = (r.NextSingle() * 2 - 1) * 0.035f; // uniform: σ = 0.035/√3 ≈ 0.02
            }
            w.Add(Weight.FromArray(name, data, shape));
        }
        Add("vit.embeddings.cls_token", false, 1, 1, C);
        Add("vit.embeddings.position_embeddings", false, 1, 1 + G * G, C);
        Add("vit.embeddings.patch_embeddings.projection.weight", false, C, ch, p, p);
        Add("vit.embeddings.patch_embeddings.projection.bias", false, C);
        for (int l = 0; l < layers; l++)
        {
            string b = $"vit.encoder.layer.{l}.", a = b + "attention.attention.";
            Add(b + "layernorm_before.weight", true, C);
            Add(b + "layernorm_before.bias", false, C);
            foreach (string qkv in new[] { "query", "key", "value" })
            {
                Add(a + qkv + ".weight", false, C, C);
                Add(a + qkv + ".bias", false, C);
            }
            Add(b + "attention.output.dense.weight", false, C, C);
            Add(b + "attention.output.dense.bias", false, C);
            Add(b + "layernorm_after.weight", true, C);
            Add(b + "layernorm_after.bias", false, C);
            Add(b + "intermediate.dense.weight", false, F, C);
            Add(b + "intermediate.dense.bias", false, F);
            Add(b + "output.dense.weight", false, C, F);
            Add(b + "output.dense.bias", false, C);
        }
        Add("vit.layernorm.weight", true, C);
        Add("vit.layernorm.bias", false, C);
        Add("classifier.weight", false, labels, C);
        Add("classifier.bias", false, labels);
        return new Vit(config, w);
    }

    /// <summary>The bundled models/&lt;<paramref name="name"/>&gt; directory, searched upwards from the current directory
    /// and from the install, or null.</summary>
    public static string? FindBundledModel(string name)
    {
        foreach (string start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                string candidate = Path.Combine(d.FullName, "models", name);
                if (File.Exists(Path.Combine(candidate, "config.json")))
                {
                    return candidate;
                }
            }
        }
        return null;
    }

    /// <summary>The "vit" object of `headwise bench --vit --json` (snake_case, as the other parts).</summary>
    public static object Json(VitBenchResult r)
    {
        static object? Speed(VitSpeed? s) => s is null ? null : new
        {
            model = s.Model,
            image_size = s.ImageSize,
            tokens = s.Tokens,
            batch = s.Batch,
            forward_s = s.SecondsPerForward,
            images_per_s = s.ImagesPerSecond,
        };
        return new
        {
            mnist = Speed(r.Mnist),
            mnist_batched = Speed(r.MnistBatched),
            sparsifiner = r.Sparsifiner.Select(s => new
            {
                model = s.Model,
                tokens = s.Tokens,
                keys_per_query = s.KeysPerQuery,
                rank = s.Rank,
                density = s.Density,
                images_per_s = s.ImagesPerSecond,
                speedup = s.Speedup,
                hooked_speedup = s.HookedSpeedup,
                attention_speedup = s.AttentionSpeedup,
            }).ToArray(),
            vit_base = Speed(r.Base),
            pruning = r.Pruning.Select(p => new { keep = p.Keep, tokens_kept = p.TokensKept, images_per_s = p.ImagesPerSecond, speedup = p.Speedup }).ToArray(),
        };
    }

    /// <summary>The text lines `headwise bench --vit` prints.</summary>
    public static IEnumerable<string> Describe(VitBenchResult r)
    {
        static string Sparse(VitSparsifinerSpeed s) => FormattableString.Invariant(
            $"sparsifiner {s.KeysPerQuery} of {s.Tokens} keys/query (rank {s.Rank}, density {s.Density:P0}): {s.ImagesPerSecond:F1} images/s = {s.Speedup:F2}× dense")
            + (s.HookedSpeedup is { } h ? FormattableString.Invariant($" (hooked reference {h:F2}×)") : "")
            + FormattableString.Invariant($"; attention alone {s.AttentionSpeedup:F2}× the dense kernel");
        static string Line(VitSpeed s) => FormattableString.Invariant($"{s.Model}, {s.ImageSize}² ({s.Tokens} tokens), batch {s.Batch}: {s.ImagesPerSecond:F1} images/s ({s.SecondsPerForward * 1000:F2} ms per forward)");
        if (r.Mnist is { } m)
        {
            yield return "vit                    " + Line(m);
            yield return "                       " + Line(r.MnistBatched!);
            foreach (var s in r.Sparsifiner.Where(s => s.Model == m.Model))
            {
                yield return "                       " + Sparse(s);
            }
        }
        else
        {
            yield return "vit                    the MNIST ViT (models/mnist-vit) not found: skipped";
        }
        yield return "                       " + Line(r.Base);
        foreach (var s in r.Sparsifiner.Where(s => s.Model == r.Base.Model))
        {
            yield return "                       " + Sparse(s);
        }
        foreach (var p in r.Pruning)
        {
            yield return FormattableString.Invariant($"                       token pruning keep {p.Keep:0.0#}: blocks ran on {p.TokensKept:P0} of the tokens, {p.ImagesPerSecond:F2} images/s = {p.Speedup:F2}× unpruned");
        }
    }
}
