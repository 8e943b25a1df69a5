using System.Diagnostics;
using Headwise.Analysis.Interventions;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Benchmarks;

/// <summary>An importance scan timed against the naive cost: one full forward per head.</summary>
/// <param name="Ratio">ScanSeconds / (Heads × ForwardSeconds): below 1 is what reusing the clean layers buys.</param>
public sealed record ImportanceScanResult(string Shape, int Tokens, int Heads, double ForwardSeconds, double ScanSeconds, double Ratio);

public static class InterventionBenchmarks
{
    /// <summary>
    /// Zero-ablation importance scan (metric: loss) over every head of a GPT-2-small-shaped random model on 1,000 tokens, or with
    /// <paramref name="quick"/> a 2-layer, 4096-token-vocabulary model on 128 tokens. The full forward is timed in the same run
    /// (median of 3 after a warm-up, before and after the scan, averaged).
    /// </summary>
    public static ImportanceScanResult ImportanceScan(bool quick = false, CancellationToken cancel = default)
    {
        var config = quick ? ModelConfig.Gpt2Small with { NLayers = 2, VocabSize = 4096 } : ModelConfig.Gpt2Small;
        int tokens = quick ? 128 : 1000;
        using var model = ModelBenchmarks.RandomModel(config);
        var rng = new Random(17);
        var ids = Enumerable.Range(0, tokens).Select(_ => rng.Next(config.VocabSize)).ToArray();
        var input = ModelInput.Single(ids);
        double forward = ModelBenchmarks.Median(3, () => model.Forward(input), cancel);
        var target = InterventionTarget.FromTokens(ids);
        Ablation.Importance(model, InterventionTarget.FromTokens(ids[..16]), AblationMethod.Zero, MetricKind.Loss, cancel: cancel); // warm-up (JIT)
        var sw = Stopwatch.StartNew();
        Ablation.Importance(model, target, AblationMethod.Zero, MetricKind.Loss, cancel: cancel);
        double scan = sw.Elapsed.TotalSeconds;
        // the machine may be shared: time the forward again after the scan and take the mean of the two medians
        forward = (forward + ModelBenchmarks.Median(3, () => model.Forward(input), cancel)) / 2;
        int heads = config.NLayers * config.NHeads;
        return new ImportanceScanResult(quick ? "gpt2-small, 2 layers, vocab 4096" : "gpt2-small", tokens, heads, forward, scan, scan / (heads * forward));
    }
}
