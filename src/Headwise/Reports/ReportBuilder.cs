using System.Globalization;
using Headwise.Analysis;
using Headwise.Analysis.Detectors;
using Headwise.Analysis.Patterns;
using Headwise.Analysis.Statistics;
using Headwise.Hooks;
using Headwise.Interventions;
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

    /// <summary>Run the sections beyond the detectors and patterns (importance, patching, context sensitivity, circuits,
    /// statistics, sinks, centrality, explanation); false = the detector report only.</summary>
    public bool Analyses { get; init; } = true;

    /// <summary>"Does attention explain" runs one forward per context token: it uses at most this many tokens of the prompt.</summary>
    public int MaxExplainTokens { get; init; } = 32;

    /// <summary>Run everything under this intervention recipe (its hooks on every forward; the model passed to
    /// <see cref="ReportBuilder.Build"/> must be its <see cref="RecipeApplication.Model"/>, whose edited weights the weight-only
    /// sections read); the page states it. Null = the model as it is.</summary>
    public RecipeApplication? Recipe { get; init; }
}

/// <summary>
/// Runs the standard analyses on a model and fills a <see cref="ReportData"/>: the detector scores (through an
/// <see cref="IHeadScoreSource"/>), every head's pattern on one prompt, the per-head grids and tables of
/// <see cref="ReportSections"/> (importance, induction patching, context sensitivity, OV copying, effective rank, row
/// kurtosis; composition, sinks, centrality, layer similarity, attention vs. leave-one-out), and a top-heads table per score.
/// A section the model cannot run (e.g. too short a context) is left out with a note instead of failing the report.
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
        if (options.Recipe is { } recipe && !ReferenceEquals(recipe.Model, model))
        {
            throw new InvalidInputException($"options.Recipe: run the report on the recipe's Model (its weight edits), not on the model it was applied to");
        }
        var c = model.Config;
        var notes = new List<string>();
        Action<HookSet>? hooks = options.Recipe is { } r ? h => r.AddHooks(h) : null;

        // 1. detector scores
        scoreSource ??= new DetectorScoreSource();
        var scores = scoreSource.Compute(model, progress, cancel, hooks);
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
        var patterns = PatternAnalysis.Run(model, ids, tokenizer, cancel, hooks);
        patterns = patterns with { Tokens = Labels(tokenizer, ids) };
        progress?.Report(new AnalysisProgress("patterns", 1, 1));

        // 3. the other analyses, on the same prompt (and, for patching, on repeated random tokens)
        var extraScores = new List<HeadScores>();
        var extraTables = new List<ReportTable>();
        if (options.Analyses)
        {
            AddSections(model, tokenizer, ids, patterns.Tokens, options, hooks, extraScores, extraTables, notes, progress, cancel);
        }
        scores = [.. scores, .. extraScores];

        // 4. top heads per score, then the other tables
        var tables = scores.Select(s => TopTable(s, options.TopK)).Concat(extraTables).ToList();

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
        var recipeFacts = options.Recipe is { } applied ? ReportRecipe.Of(applied.Recipe) : null;
        if (recipeFacts is not null)
        {
            // near the top of the page: every number below is the intervened model's
            facts.Insert(1, new("recipe", $"{recipeFacts.Name} ({recipeFacts.File}): every number in this report is computed under it"));
            for (int i = 0; i < recipeFacts.Items.Count; i++)
            {
                facts.Insert(2 + i, new($"intervention {i + 1}", recipeFacts.Items[i]));
            }
        }
        string title = $"Headwise report: {options.ModelName ?? c.ModelType}{(recipeFacts is null ? "" : $" under recipe {recipeFacts.Name}")}";
        return new ReportData(new ReportInfo(title, c.NLayers, c.NHeads, facts), scores, patterns, tables, notes) { Recipe = recipeFacts };
    }

    /// <summary>
    /// The sections of <see cref="ReportSections"/>, each computed by its library analysis on the prompt <paramref name="ids"/>.
    /// Each reports its progress; one that throws <see cref="InvalidInputException"/> (it cannot run on this model or prompt)
    /// is skipped with a note.
    /// </summary>
    private static void AddSections(TransformerModel model, TextTokenizer? tokenizer, int[] ids, string[] labels, ReportOptions options,
        Action<HookSet>? hooks, List<HeadScores> scores, List<ReportTable> tables, List<string> notes, IProgress<AnalysisProgress>? progress, CancellationToken cancel)
    {
        void Run(string name, Action section)
        {
            cancel.ThrowIfCancellationRequested();
            progress?.Report(new AnalysisProgress(name, 0, 1));
            try
            {
                section();
            }

            catch (InvalidInputException e)
            {
                notes.Add($"{name}: skipped ({e.Message}).");
            }
            progress?.Report(new AnalysisProgress(name, 1, 1));
        }

        Run("importance", () => scores.Add(ReportSections.Importance(model, ids, progress, cancel, hooks)));
        Run("induction patching", () => scores.Add(ReportSections.InductionPatching(model, progress, cancel, hooks)));
        Run("context sensitivity", () => scores.Add(ReportSections.Context(model, ids, cancel, hooks)));
        ReportTable? composition = null;
        Run("OV circuits", () =>
        {
            var (copying, table, note) = ReportSections.Circuits(model, options.TopK, progress, cancel);
            scores.Add(copying);
            composition = table;
            if (note is not null)
            {
                notes.Add(note);
            }
        });
        var cache = PatternCache.Run(model, ids, hooks);
        ReportTable? similarity = null;
        Run("pattern statistics", () =>
        {
            var (erank, kurtosis, table) = ReportSections.Statistics(model, ids, cache, progress, cancel);
            scores.Add(erank);
            scores.Add(kurtosis);
            similarity = table;
        });
        if (composition is not null)
        {
            tables.Add(composition);
        }
        Run("sinks", () => tables.Add(ReportSections.Sinks(model, ids, cache, labels)));
        Run("centrality", () => tables.Add(ReportSections.Centrality(model, ids, cache, labels, options.TopK)));
        if (similarity is not null)
        {
            tables.Add(similarity);
        }
        Run("attention vs. leave-one-out", () =>
        {
            int n = Math.Min(ids.Length, Math.Max(3, options.MaxExplainTokens));
            var explainCache = n == ids.Length ? cache : PatternCache.Run(model, ids[..n], hooks);
            tables.Add(ReportSections.Explain(model, ids[..n], explainCache, labels[..n], id => TokenText(tokenizer, id), options.TopK, progress, cancel, hooks));
            if (n < ids.Length)
            {
                notes.Add($"\"Does attention explain\" uses the first {n} of the prompt's {ids.Length} tokens (one forward per token).");
            }
        });
        notes.Add($"Importance, context sensitivity, effective rank, row kurtosis, sinks, centrality and layer similarity are measured on the "
            + $"{ids.Length}-token prompt of the patterns; induction patching on its own repeated random tokens; OV copying and composition on the weights.");
    }

    /// <summary>A token for a caption: its text in quotes and its id, or just "#id" without a tokenizer.</summary>
    private static string TokenText(TextTokenizer? tokenizer, int id) =>
        tokenizer is not null && id < tokenizer.VocabSize
            ? $"\"{tokenizer.TokenText(id).Replace("\n", "\\n", StringComparison.Ordinal)}\" (#{id})"
            : $"#{id}";

    /// <summary>The highest (or, for entropy, lowest) <paramref name="k"/> heads of a score; heads without a value (NaN) are left out.</summary>
    public static ReportTable TopTable(HeadScores scores, int k)
    {
        bool low = s_lowIsNotable.Contains(scores.Name);
        var ranked = scores.Ranked(descending: !low).Where(r => float.IsFinite(r.Score)).Take(k);
        var rows = ranked.Select((r, i) => (IReadOnlyList<string>)
            [(i + 1).ToString(CultureInfo.InvariantCulture), r.Head.ToString(), r.Score.ToString("G4", CultureInfo.InvariantCulture)]).ToList();
        return new ReportTable($"Top heads: {scores.Name}", (low ? "lowest first: " : "highest first: ") + scores.Definition
            + (scores.Warning is null ? "" : $". WARNING: {scores.Warning}"),
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
