using Headwise.Analysis;
using Headwise.Analysis.Detectors;
using Headwise.Hooks;
using Headwise.Models;

namespace Headwise.Reports;

/// <summary>Where the report gets its per-head scores: any source of <see cref="HeadScores"/>. Each becomes one choice in
/// the grid's selector, one top-heads table and one PNG.</summary>
public interface IHeadScoreSource
{
    /// <summary>One sentence for the page: on what input the scores were measured.</summary>
    string Description(TransformerModel model);

    /// <summary>The scores; <paramref name="baseHooks"/> (e.g. an intervention recipe's) ride on every forward.</summary>
    IReadOnlyList<HeadScores> Compute(TransformerModel model, IProgress<AnalysisProgress>? progress, CancellationToken cancel,
        Action<HookSet>? baseHooks = null);
}

/// <summary>
/// The six detector scores of <see cref="HeadDetectors"/> (previous-token, induction, duplicate-token, sink, entropy,
/// attention distance), all on repeated random tokens; n is shortened to fit a small context.
/// </summary>
public sealed class DetectorScoreSource(int seqLen = 50, int batch = 10, int seed = 0) : IHeadScoreSource
{
    public HeadDetectorOptions Options(TransformerModel model)
    {
        var c = model.Config;
        int bos = c.BosTokenId is null ? 0 : 1;
        return new HeadDetectorOptions(SeqLen: Math.Max(2, Math.Min(seqLen, (c.MaxPositions - bos) / 2)), Batch: batch, Seed: seed);
    }

    public string Description(TransformerModel model)
    {
        var o = Options(model);
        return $"Scores from HeadDetectors on {o.Batch} sequences of {o.SeqLen} random tokens repeated twice (seed {o.Seed}"
            + $"{(model.Config.BosTokenId is null ? "" : ", BOS first")}), read from hook_pattern.";
    }

    public IReadOnlyList<HeadScores> Compute(TransformerModel model, IProgress<AnalysisProgress>? progress, CancellationToken cancel,
        Action<HookSet>? baseHooks = null) =>
        HeadDetectors.Run(model, tokens: null, Options(model), progress, cancel, baseHooks).All.Select(s => s.Scores).ToArray();
}
