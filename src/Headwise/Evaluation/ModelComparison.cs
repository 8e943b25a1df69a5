using Headwise.Models;

namespace Headwise.Evaluation;

/// <summary>One model of a comparison: its size, its KV cache per token, and its loss on the shared text.</summary>
/// <param name="Name">How the user named it (the --model value).</param>
/// <param name="DeltaNll">MeanNll − the first model's MeanNll (nats/token; 0 for the first).</param>
public sealed record ComparedModel(string Name, string Family, long Parameters, long KvCacheBytesPerToken, double MeanNll, double Perplexity,
    double DeltaNll)
{
    /// <summary>Measured speed, when the caller timed it (the CLI does, with the benchmarks' timer).</summary>
    public ComparedSpeed? Speed { get; init; }
}

/// <summary>Tokens per second of a prefill of <paramref name="PrefillTokens"/> tokens and of decoding after a context of
/// <paramref name="DecodeContext"/> tokens, each also as a ratio to the first model's, timed in the same run.</summary>
public sealed record ComparedSpeed(int PrefillTokens, double PrefillTokensPerSecond, double PrefillRatio, int DecodeContext,
    double DecodeTokensPerSecond, double DecodeRatio);

/// <summary>The table every restructuring paper reports: the same text scored by each model (the same tokens and window).</summary>
public sealed record ModelComparison(int Tokens, int Window, int Stride, IReadOnlyList<ComparedModel> Models)
{
    /// <summary>
    /// Scores <paramref name="ids"/> with every model, with one window for all (at most the smallest context, so that each
    /// model sees the same context per token). The models must share a vocabulary size: NLLs over different vocabularies
    /// are not comparable.
    /// </summary>
    public static ModelComparison Compute(IReadOnlyList<(string Name, TransformerModel Model)> models, int[] ids, int? window = null, int? stride = null,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancel = default)
    {
        if (models.Count == 0)
        {
            throw new InvalidInputException("a comparison needs at least one model");
        }
        int vocab = models[0].Model.Config.VocabSize;
        foreach (var (name, model) in models.Skip(1))
        {
            if (model.Config.VocabSize != vocab)
            {
                throw new InvalidInputException($"{name} has a vocabulary of {model.Config.VocabSize} tokens and {models[0].Name} of {vocab}: "
                    + "NLLs over different vocabularies are not comparable");
            }
        }
        int context = models.Min(m => m.Model.Config.MaxPositions);
        int w = window ?? context;
        if (w < 2 || w > context)
        {
            throw new InvalidInputException($"window {w} must be between 2 and the smallest context of the models ({context})");
        }
        int s = stride ?? Math.Max(1, w / 2);
        var rows = new List<ComparedModel>();
        double first = 0;
        for (int i = 0; i < models.Count; i++)
        {
            var (name, model) = models[i];
            var r = Perplexity.Evaluate(model, ids, w, s, progress, cancel);
            if (i == 0)
            {
                first = r.MeanNll;
            }
            var c = model.Config;
            rows.Add(new ComparedModel(name, c.Family.ToString(), c.ParameterCount, model.KvCacheBytesPerToken, r.MeanNll, r.Perplexity, r.MeanNll - first));
        }
        return new ModelComparison(ids.Length, Math.Min(w, ids.Length), s, rows);
    }
}
