using System.Globalization;
using Headwise.Analysis;
using Headwise.Analysis.Detectors;
using Headwise.Analysis.Patterns;
using Headwise.Models;
using Headwise.Tokenizers;

namespace Headwise.Reports;

/// <summary>What the standard report runs: the prompt for the patterns, its cap, and how many heads each table lists.</summary>
public sealed record ReportOptions
{
    /// <summary>The prompt whose patterns the page shows; null = <see cref="ReportBuilder.DefaultText"/> with a tokenizer,
    /// else the repeated random tokens the scores use.</summary>
    public string? Text { get; init; }

    /// <summary>Patterns cover at most this many tokens (T × T values per head); longer prompts are cut and the page says so.</summary>
    public int MaxTokens { get; init; } = 64;

    /// <summary>Rows in each top-heads table.</summary>
    public int TopK { get; init; } = 5;

    /// <summary>A name for the title (the --model argument); null = the model type.</summary>
    public string? ModelName { get; init; }
}

/// <summary>
/// Runs the standard analyses on a model and fills a <see cref="ReportData"/>: the detector scores (through an
/// <see cref="IHeadScoreSource"/>), every head's pattern on one prompt, and a top-heads table per score.
/// </summary>
public static class ReportBuilder
{
    public const string DefaultText = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
        + "One day, she saw a big red ball. Lily said, \"Can I play with the ball?\" Her mom said yes, and Lily played with the ball all day.";

    /// <summary>Scores where a low value is the notable one; their table lists the lowest first.</summary>
    private static readonly HashSet<string> s_lowIsNotable = ["entropy"];

    public static ReportData Build(TransformerModel model, TextTokenizer? tokenizer, ReportOptions options,
        IProgress<AnalysisProgress>? progress = null, CancellationToken cancel = default, IHeadScoreSource? scoreSource = null)
    {
        if (options.MaxTokens < 2)
        {
            throw new InvalidInputException($"max tokens must be at least 2 (got {options.MaxTokens})");
        }
        var c = model.Config;
        var notes = new List<string>();

        // 1. detector scores
        scoreSource ??= new DetectorScoreSource();
        var scores = scoreSource.Compute(model, progress, cancel);
        notes.Add(scoreSource.Description(model));

        // 2. every head's pattern on the prompt
        cancel.ThrowIfCancellationRequested();
        var (ids, promptNote) = Prompt(model, tokenizer, options);
        int cap = Math.Min(options.MaxTokens, c.MaxPositions);
        if (ids.Length > cap)
        {
            notes.Add($"The prompt has {ids.Length} tokens; patterns show the first {cap} (the report caps T at {cap}).");
            ids = ids[..cap];
        }
        notes.Add(promptNote);
        progress?.Report(new AnalysisProgress("patterns", 0, 1));
        var patterns = PatternAnalysis.Run(model, ids, tokenizer, cancel);
        patterns = patterns with { Tokens = Labels(tokenizer, ids) };
        progress?.Report(new AnalysisProgress("patterns", 1, 1));

        // 3. top heads per score
        var tables = scores.Select(s => TopTable(s, options.TopK)).ToList();

        var facts = new List<KeyValuePair<string, string>>
        {
            new("model", options.ModelName ?? c.ModelType),
            new("type", $"{c.ModelType} ({c.Family} family)"),
            new("parameters", c.ParameterCount.ToString("N0", CultureInfo.InvariantCulture)),
            new("layers", c.NLayers.ToString(CultureInfo.InvariantCulture)),
            new("heads", c.NKvHeads == c.NHeads ? $"{c.NHeads}" : $"{c.NHeads} query, {c.NKvHeads} key/value"),
            new("widths", $"d_model {c.DModel}, d_head {c.DHead}, d_mlp {c.DMlp}"),
            new("context", $"{c.MaxPositions} positions, vocabulary {c.VocabSize}"),
            new("positions", c.RotaryDims > 0 ? $"RoPE on {c.RotaryDims}/{c.DHead} dims" : "learned embeddings"),
            new("dtype", $"{c.StoredDType} stored, float32 compute"),
        };
        string title = $"Headwise report: {options.ModelName ?? c.ModelType}";
        return new ReportData(new ReportInfo(title, c.NLayers, c.NHeads, facts), scores, patterns, tables, notes);
    }

    /// <summary>The highest (or, for entropy, lowest) <paramref name="k"/> heads of a score.</summary>
    public static ReportTable TopTable(HeadScores scores, int k)
    {
        bool low = s_lowIsNotable.Contains(scores.Name);
        var ranked = scores.Ranked(descending: !low).Take(k);
        var rows = ranked.Select((r, i) => (IReadOnlyList<string>)
            [(i + 1).ToString(CultureInfo.InvariantCulture), r.Head.ToString(), r.Score.ToString("G4", CultureInfo.InvariantCulture)]).ToList();
        return new ReportTable($"Top heads: {scores.Name}", (low ? "lowest first: " : "highest first: ") + scores.Definition,
            ["rank", "head", scores.Name], rows, HeadColumn: 1);
    }

    /// <summary>Display text of each token: its decoded piece in context, or "#id" without a tokenizer or for an empty piece.</summary>
    public static string[] Labels(TextTokenizer? tokenizer, int[] ids)
    {
        var labels = new string[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            string piece = tokenizer?.DecodeNext(ids.AsSpan(0, i), ids[i]) ?? "";
            piece = piece.Replace("\n", "\\n", StringComparison.Ordinal).Replace("\t", "\\t", StringComparison.Ordinal);
            labels[i] = piece.Length == 0 ? $"#{ids[i]}" : piece;
        }
        return labels;
    }

    private static (int[] Ids, string Note) Prompt(TransformerModel model, TextTokenizer? tokenizer, ReportOptions options)
    {
        if (tokenizer is not null)
        {
            string text = options.Text ?? DefaultText;
            var ids = tokenizer.Encode(text);
            if (ids.Length == 0)
            {
                throw new InvalidInputException("--text encodes to no tokens");
            }
            return (ids, options.Text is null ? "Patterns are shown on the default prompt (a short story)." : "Patterns are shown on the given prompt.");
        }
        if (options.Text is not null)
        {
            throw new InvalidInputException("--text needs a tokenizer: this model has none (give --tokenizer)");
        }
        var c = model.Config;
        bool bos = c.BosTokenId is not null;
        int n = Math.Max(2, Math.Min(16, (Math.Min(options.MaxTokens, c.MaxPositions) - (bos ? 1 : 0)) / 2));
        var seq = HeadDetectors.RepeatedSequences(c, new HeadDetectorOptions(SeqLen: n, Batch: 1, Seed: 1), bos)[0];
        return (seq,
            $"The model has no tokenizer: patterns are shown on {n} random token ids repeated twice (labels are #id).");
    }
}
