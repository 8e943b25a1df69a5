using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Analysis.Detectors;

/// <summary>Settings of <see cref="HeadDetectors.Run"/>: the repeated random sequences the induction and duplicate scores use.</summary>
/// <param name="SeqLen">n: each sequence is n random tokens followed by the same n tokens again.</param>
/// <param name="Batch">How many such sequences (scores are means over them).</param>
/// <param name="Seed">Seed of the token draw.</param>
/// <param name="PrependBos">Put BOS before each repeated sequence: null = when the model's config names a BOS token.</param>
public sealed record HeadDetectorOptions(int SeqLen = 50, int Batch = 10, int Seed = 0, bool? PrependBos = null);

/// <summary>The six detector scores of every head, and the inputs they were computed on.</summary>
/// <param name="Repeated">The repeated sequences (BOS included when prepended).</param>
/// <param name="Tokens">The ids the pattern-based scores used, or null when they used <paramref name="Repeated"/>.</param>
public sealed record HeadDetectorResult(
    HeadScores PrevToken, HeadScores Induction, HeadScores Duplicate, HeadScores Sink, HeadScores Entropy, HeadScores Distance,
    HeadDetectorOptions Options, bool Bos, int[][] Repeated, int[]? Tokens)
{
    /// <summary>The scores in the order the CLI prints them, keyed by their JSON names.</summary>
    public IReadOnlyList<(string Key, HeadScores Scores)> All =>
    [
        ("prev_token", PrevToken), ("induction", Induction), ("duplicate", Duplicate),
        ("sink", Sink), ("entropy", Entropy), ("distance", Distance),
    ];
}

/// <summary>
/// Head detectors: one number per head from its attention pattern, each with a one-line definition (docs/analyses.md).
/// Everything is computed from <c>blocks.{L}.attn.hook_pattern</c> [batch, head, q, k] alone.
/// <para>
/// Induction and duplicate-token scores use B sequences of n random tokens repeated twice, drawn uniformly from
/// [min(100, V/4), V) minus the BOS and EOS ids (so special ids at the start of a vocabulary stay out), with BOS prepended
/// when the model has one; with BOS at position 0 the first half is positions 1..n and the second n+1..2n.
/// The pattern-based scores (previous-token, sink, entropy, distance) use the given tokens exactly as given, or, without
/// tokens, the same repeated sequences.
/// </para>
/// </summary>
public static class HeadDetectors
{
    public const string PrevTokenDefinition = "mean attention from position i to i − 1, over i ≥ 1";
    public const string InductionDefinition = "on random tokens repeated twice (n each), mean attention from i in the second half to i − n + 1";
    public const string DuplicateDefinition = "on random tokens repeated twice (n each), mean attention from i in the second half to i − n";
    public const string SinkDefinition = "mean attention on position 0, over query positions q ≥ 1";
    public const string EntropyDefinition = "entropy of each query's attention row in nats, mean over q ≥ 1";
    public const string DistanceDefinition = "mean attention distance Σ_k p(q,k)·(q − k), mean over q ≥ 1";

    public static HeadDetectorResult Run(TransformerModel model, int[]? tokens = null, HeadDetectorOptions? options = null,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        options ??= new HeadDetectorOptions();
        var cfg = model.Config;
        cfg.RequireUniformHeads("the head detectors");
        int L = cfg.NLayers, H = cfg.NHeads;
        bool bos = options.PrependBos ?? cfg.BosTokenId is not null;
        if (bos && cfg.BosTokenId is null)
        {
            throw new InvalidInputException("PrependBos: the model's config names no BOS token");
        }
        if (options.SeqLen < 2)
        {
            throw new InvalidInputException($"seq-len must be at least 2 (got {options.SeqLen})");
        }
        if (options.Batch < 1)
        {
            throw new InvalidInputException($"batch must be at least 1 (got {options.Batch})");
        }
        int offset = bos ? 1 : 0, n = options.SeqLen;
        if (offset + 2 * n > cfg.MaxPositions)
        {
            throw new InvalidInputException($"seq-len {n}: {(bos ? "BOS + " : "")}2 × {n} positions exceed the model's context of {cfg.MaxPositions}");
        }
        if (tokens is { Length: 0 })
        {
            throw new InvalidInputException("tokens: at least one token id is needed");
        }

        var repeated = RepeatedSequences(cfg, options, bos);
        var sums = new Dictionary<string, double[,]>();
        foreach (var key in new[] { "prev_token", "induction", "duplicate", "sink", "entropy", "distance" })
        {
            sums[key] = new double[L, H];
        }
        int total = repeated.Length + (tokens is null ? 0 : 1);
        progress?.Report(new AnalysisProgress("detectors", 0, total));

        var patterns = new ActivationCache(); // refilled by every run: the sequences share one shape
        for (int b = 0; b < repeated.Length; b++)
        {
            cancel.ThrowIfCancellationRequested();
            var seq = repeated[b];
            ForEachPattern(model, seq, patterns, baseHooks, (l, h, p) =>
            {
                sums["induction"][l, h] += InductionScore(p.Span, seq.Length, offset, n);
                sums["duplicate"][l, h] += DuplicateScore(p.Span, seq.Length, offset, n);
                if (tokens is null)
                {
                    AddPatternScores(sums, l, h, p, seq.Length);
                }
            });
            progress?.Report(new AnalysisProgress("detectors", b + 1, total));
        }
        int patternRuns = repeated.Length;
        if (tokens is not null)
        {
            cancel.ThrowIfCancellationRequested();
            ForEachPattern(model, tokens, patterns, baseHooks, (l, h, p) => AddPatternScores(sums, l, h, p, tokens.Length));
            patternRuns = 1;
            progress?.Report(new AnalysisProgress("detectors", total, total));
        }

        HeadScores Mean(string key, string name, string definition, int count) =>
            HeadScores.Create(name, definition, L, H, (l, h) => (float)(sums[key][l, h] / count));
        return new HeadDetectorResult(
            Mean("prev_token", "previous-token", PrevTokenDefinition, patternRuns),
            Mean("induction", "induction", InductionDefinition, repeated.Length),
            Mean("duplicate", "duplicate-token", DuplicateDefinition, repeated.Length),
            Mean("sink", "sink", SinkDefinition, patternRuns),
            Mean("entropy", "entropy", EntropyDefinition, patternRuns),
            Mean("distance", "attention distance", DistanceDefinition, patternRuns),
            options, bos, repeated, tokens);
    }

    /// <summary>
    /// B sequences [BOS] x₁..xₙ x₁..xₙ with xᵢ uniform in [min(100, V/4), V), skipping the BOS and EOS ids; deterministic in the seed.
    /// </summary>
    public static int[][] RepeatedSequences(Loading.ModelConfig cfg, HeadDetectorOptions options, bool bos)
    {
        int V = cfg.VocabSize, lo = Math.Min(100, V / 4), n = options.SeqLen;
        if (V - lo < 2)
        {
            throw new InvalidInputException($"the vocabulary of {V} ids is too small for random repeated sequences");
        }
        var rng = new Random(options.Seed);
        var result = new int[options.Batch][];
        for (int b = 0; b < options.Batch; b++)
        {
            var seq = new int[(bos ? 1 : 0) + 2 * n];
            int o = 0;
            if (bos)
            {
                seq[o++] = cfg.BosTokenId!.Value;
            }
            for (int i = 0; i < n; i++)
            {
                int id;
                do
                {
                    id = rng.Next(lo, V);
                }
                while (id == cfg.BosTokenId || id == cfg.EosTokenId);
                seq[o + i] = id;
                seq[o + n + i] = id;
            }
            result[b] = seq;
        }
        return result;
    }

    // Runs one sequence, caching only the patterns, and hands each head's T × T pattern to the callback.
    private static void ForEachPattern(TransformerModel model, int[] seq, ActivationCache reuse, Action<HookSet>? baseHooks,
        Action<int, int, ReadOnlyMemory<float>> onHead)
    {
        var (_, cache) = model.RunWithCache(ModelInput.Single(seq), name => name.EndsWith("attn.hook_pattern", StringComparison.Ordinal), reuse: reuse,
            baseHooks: baseHooks);
        model.Config.RequireUniformHeads("the head detectors");
        int T = seq.Length, H = model.Config.NHeads;
        for (int l = 0; l < model.Config.NLayers; l++)
        {
            var data = cache[$"blocks.{l}.attn.hook_pattern"].Data; // [1, head, q, k]
            for (int h = 0; h < H; h++)
            {
                onHead(l, h, data.AsMemory(h * T * T, T * T));
            }
        }
    }

    private static void AddPatternScores(Dictionary<string, double[,]> sums, int l, int h, ReadOnlyMemory<float> p, int T)
    {
        sums["prev_token"][l, h] += PrevTokenScore(p.Span, T);
        sums["sink"][l, h] += SinkScore(p.Span, T);
        sums["entropy"][l, h] += MeanEntropy(p.Span, T);
        sums["distance"][l, h] += MeanDistance(p.Span, T);
    }

    // ---------------------------------------------------------------------------------------------------------------
    // The scores of one head's pattern p: T × T row-major, p[q·T + k] the attention of query q on key k.

    /// <summary>Mean over q in 1..T−1 of p(q, q − 1); 0 when T = 1.</summary>
    public static double PrevTokenScore(ReadOnlySpan<float> p, int T)
    {
        double s = 0;
        for (int q = 1; q < T; q++)
        {
            s += p[q * T + q - 1];
        }
        return T > 1 ? s / (T - 1) : 0;
    }

    /// <summary>Mean over q in 1..T−1 of p(q, 0); 0 when T = 1.</summary>
    public static double SinkScore(ReadOnlySpan<float> p, int T)
    {
        double s = 0;
        for (int q = 1; q < T; q++)
        {
            s += p[q * T];
        }
        return T > 1 ? s / (T - 1) : 0;
    }

    /// <summary>Mean over q in 1..T−1 of −Σ_k p(q,k)·ln p(q,k) (nats; 0·ln 0 = 0); 0 when T = 1.</summary>
    public static double MeanEntropy(ReadOnlySpan<float> p, int T)
    {
        double s = 0;
        for (int q = 1; q < T; q++)
        {
            for (int k = 0; k <= q; k++)
            {
                double x = p[q * T + k];
                if (x > 0)
                {
                    s -= x * Math.Log(x);
                }
            }
        }
        return T > 1 ? s / (T - 1) : 0;
    }

    /// <summary>Mean over q in 1..T−1 of Σ_k p(q,k)·(q − k), in positions; 0 when T = 1.</summary>
    public static double MeanDistance(ReadOnlySpan<float> p, int T)
    {
        double s = 0;
        for (int q = 1; q < T; q++)
        {
            for (int k = 0; k <= q; k++)
            {
                s += p[q * T + k] * (q - k);
            }
        }
        return T > 1 ? s / (T - 1) : 0;
    }

    /// <summary>
    /// On [offset prefix] x₁..xₙ x₁..xₙ (first half at offset..offset+n−1): mean over the second half q in offset+n..offset+2n−1
    /// of p(q, q − n + 1) — the token after the earlier copy of the current one.
    /// </summary>
    public static double InductionScore(ReadOnlySpan<float> p, int T, int offset, int n)
    {
        double s = 0;
        for (int q = offset + n; q < offset + 2 * n; q++)
        {
            s += p[q * T + q - n + 1];
        }
        return s / n;
    }

    /// <summary>As <see cref="InductionScore(ReadOnlySpan{float}, int, int, int)"/>, but on p(q, q − n) — the earlier copy itself.</summary>
    public static double DuplicateScore(ReadOnlySpan<float> p, int T, int offset, int n)
    {
        double s = 0;
        for (int q = offset + n; q < offset + 2 * n; q++)
        {
            s += p[q * T + q - n];
        }
        return s / n;
    }
}
