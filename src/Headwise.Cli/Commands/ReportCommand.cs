using Headwise.Analysis;
using Headwise.Reports;

namespace Headwise.Cli.Commands;

public sealed class ReportCommand : ICommand
{
    public string Name => "report";
    public string Summary => "one self-contained HTML page of every head: score grids, patterns, top heads, circuits, sinks, statistics (+ PNGs)";
    public string Usage => """
        headwise report --model M [--out FILE] [--text "..."] [--max-tokens N] [--top K] [--png-dir DIR [--heads L.H,..]]
                        [--compare M ...] [--intervene FILE] [--attention SPEC] [--json]
        headwise report --model VIT --image FILE [--out FILE] [--top K] [--clusters K] [--query-patch R,C|centre]
                        [--png-dir DIR [--heads L.H,..]] [--intervene FILE] [--json]
        """;

    public string Description => """
        Runs the standard analyses on a model and writes one HTML file that opens offline in any browser: the model's
        facts, a layer × head grid coloured by any per-head score (the detectors: previous-token, induction,
        duplicate-token, sink, entropy, attention distance; and importance (mean ablation, loss), induction patching,
        context sensitivity, OV copying, effective rank, row kurtosis; a selector switches between them), every head's
        attention pattern on a prompt (click a head; hover a cell for query, key and weight), tables of the top heads
        per score, and tables of the top Q/K/V-composition pairs, the attention sinks, per-layer token centrality, the
        layer × layer attention similarity and whether attention explains the prediction (Kendall τ / Spearman ρ
        against leave-one-out). A section the model cannot run is left out with a note. The file is written to a
        temporary name and renamed, so it is never half written; the command prints its path. See docs/report.md.

        On a vision model (ViT), with --image: the grid coloured by the image scores (attention distance in patches,
        entropy, CLS attention, patch sink), every head's pattern on the image (CLS first), the top heads, each head's
        CLS attention as a heat overlay on the image, the attention rollout overlay, and the heads clustered by
        attention profile with each cluster's prototype (docs/vision.md); with --query-patch, also each head's
        attention of that patch as an overlay (the patch outlined).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("out", "FILE", "the HTML file to write (default headwise-report.html)"),
        CliOption.Text("text", "S", "the prompt for the patterns (default: a short story; without a tokenizer, random tokens)"),
        CliOption.Integer("max-tokens", "N", "cap the prompt at N tokens (default 64; patterns grow as N²; the prompt-based sections\nuse the same capped prompt, leave-one-out at most its first 32 tokens)"),
        CliOption.Integer("top", "K", "rows per top-heads table (default 5)"),
        CliOption.Text("png-dir", "DIR", "also write PNG figures: scores-NAME.png per score grid (one row per layer, one column\nper head) and pattern-L.H.png for the top head of each score, with a title, axis names,\ntick labels (tokens) and a colour bar (labels need a font file: HEADWISE_FONT or a system one);\non a vision model also its pictures: cls-overlay-L.H.png, rollout.png, cluster-K.png (and\npatch-overlay-L.H.png with --query-patch)"),
        CliOption.Text("heads", "L.H,..", "with --png-dir: write the patterns of these heads instead, e.g. --heads 1.4,3.6"),
        CliOption.Text("image", "FILE", "a vision model's image (PNG/JPEG, preprocessed as the model's preprocessor_config.json says)"),
        CliOption.Integer("clusters", "K", "on a vision model: the number of pattern clusters (default 4, at most the number of heads)"),
        ImageArgs.QueryPatchOption with { Description = ImageArgs.QueryPatchOption.Description + "\n(a section of per-head overlays, the patch outlined; PNGs patch-overlay-L.H.png)" },
        CliOption.Repeated("compare", "M", "add a \"Model comparison\" section: this model against M (repeat for more models), e.g. a\nconversion of it: mean NLL, perplexity, ΔNLL, parameters and KV-cache bytes per token on the\nprompt (--text, else the default story); for timings run headwise compare"),
        .. CliOption.Noted(RecipeArgs.Options, "(every section under it, circuits on its edited weights; the page names the recipe and\nlists its items at the top. An inject recipe fits no report: the report runs inputs of\nseveral lengths)"),
        .. AttentionArgs.Options,
        CliOption.Flag("json", "print {\"path\": ..., \"layers\": L, \"heads\": H, \"scores\": [names], \"pngs\": [...]} (and\n\"recipe\": name under --intervene; \"attention\", \"density\" under --attention)"),
    ];

    public string Examples => """
        Example:
          headwise report --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --out stories.html
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        string outPath = args.Get("out") ?? "headwise-report.html";
        string? text = args.Get("text");
        string? pngDir = args.Get("png-dir");
        string? headsArg = args.Get("heads");
        int maxTokens = args.GetInt("max-tokens", 64, 2, 1024);
        int top = args.GetInt("top", 5, 1, 1000);
        string modelArg = args.Require("model", "a model directory or llama2.c .bin");
        using var loaded = ModelArgs.Load(args);
        if (headsArg is not null && pngDir is null)
        {
            throw new UsageException("--heads chooses the pattern PNGs: give --png-dir DIR too");
        }
        var pngHeads = headsArg is null ? null : HeadId.ParseList(headsArg, loaded.Config.NLayers, loaded.Config.NHeads);
        if (Directory.Exists(outPath))
        {
            throw new UsageException($"--out {outPath} is a directory; give a file name such as {Path.Combine(outPath, "report.html")}");
        }

        var progress = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        if (loaded.Config.Vision is not null || args.Has("image") || args.Has("clusters") || args.Has("query-patch"))
        {
            if (args.Has("attention"))
            {
                throw new UsageException("--attention applies to causal text models; an image classifier attends bidirectionally");
            }
            return RunImage(args, loaded, outPath, top, json, pngDir, pngHeads, stdout, stderr);
        }
        using var applied = RecipeArgs.Apply(args, loaded);
        if (applied?.SourceLengths.FirstOrDefault() is { Length: > 0 } inject)
        {
            throw new InvalidInputException($"{applied.Recipe.Where(inject.Item)}: the report runs inputs of several lengths, which no inject source of one length fits; run the analyses with --intervene one by one");
        }
        var options = new ReportOptions
        {
            Text = text,
            MaxTokens = maxTokens,
            TopK = top,
            ModelName = Path.GetFileName(modelArg.TrimEnd('/', '\\')),
            Recipe = applied,
        };
        var compare = args.GetAll("compare");
        if (compare.Count > 0 && applied is not null)
        {
            throw new UsageException("--compare does not combine with --intervene yet: export the recipe (headwise export) and compare the checkpoint");
        }
        var policy = AttentionArgs.Apply(args, applied?.Model ?? loaded.Model);
        var data = ReportBuilder.Build(applied?.Model ?? loaded.Model, loaded.Tokenizer, options, progress, CliMain.Cancellation);
        CliMain.Cancellation.ThrowIfCancellationRequested();
        if (compare.Count > 0)
        {
            var others = new List<LoadedModel>();
            try
            {
                foreach (string path in compare)
                {
                    others.Add(ModelLoader.Load(ModelArgs.ResolveModel(path)));
                }
                int[] ids = loaded.RequireTokenizer().Encode(text ?? ReportBuilder.DefaultText);
                var models = new List<(string, Models.TransformerModel)> { (modelArg, loaded.Model) };
                models.AddRange(others.Select((o, i) => (compare[i], o.Model)));
                var comparison = Evaluation.ModelComparison.Compute(models, ids, cancel: CliMain.Cancellation);
                data = data with { Tables = [.. data.Tables, ReportSections.Comparison(comparison)] };
            }
            finally
            {
                others.ForEach(o => o.Dispose());
            }
        }

        var pngs = pngDir is null ? [] : WritePngs(data, pngDir, pngHeads, stderr);
        string written = HtmlReport.Write(outPath, data);

        if (json)
        {
            stdout.WriteLine(AttentionArgs.Json(RecipeArgs.Json(new
            {
                path = written,
                layers = data.Info.Layers,
                heads = data.Info.Heads,
                scores = data.Scores.Select(s => s.Name).ToArray(),
                pngs,
            }, applied), policy));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        AttentionArgs.WriteLine(stdout, policy);
        foreach (var p in pngs)
        {
            stderr.WriteLine($"wrote {p}");
        }
        stdout.WriteLine(written);
        return 0;
    }

    // a vision model on one image: scores, patterns, overlays, rollout and clusters (VisionReport)
    private static int RunImage(CliArgs args, LoadedModel loaded, string outPath, int top, bool json, string? pngDir, IReadOnlyList<HeadId>? pngHeads,
        TextWriter stdout, TextWriter stderr)
    {
        ImageArgs.RequireVision(loaded, "report --image");
        foreach (string option in new[] { "text", "max-tokens", "compare" })
        {
            if (args.Has(option))
            {
                throw new UsageException($"--{option} is for language models; a vision report takes --image FILE (its pictures are embedded in the page)");
            }
        }
        string file = args.Get("image") ?? throw new UsageException($"{loaded.Path} is a vision model: give --image FILE");
        if (!File.Exists(file))
        {
            throw new UsageException($"--image: {file} not found");
        }
        int clusters = args.GetInt("clusters", 4, 1, loaded.Config.NLayers * loaded.Config.NHeads);
        var input = ImageArgs.Read(file, loaded, ImageArgs.Processor(loaded), stderr);
        int patch = loaded.Config.Vision!.PatchSize;
        var queryPatch = ImageArgs.QueryPatch(args, input.Pixels!.Height / patch, input.Pixels.Width / patch);
        using var applied = RecipeArgs.Apply(args, loaded);
        var options = new ReportOptions
        {
            TopK = top,
            ModelName = Path.GetFileName(args.Require("model", "a model directory").TrimEnd('/', '\\')),
            Recipe = applied,
        };
        var data = VisionReport.Build(applied?.Model ?? loaded.Model, input, Path.GetFileName(file), options, clusters, cancel: CliMain.Cancellation, queryPatch: queryPatch);
        var pngs = pngDir is null ? [] : WritePngs(data, pngDir, pngHeads, stderr);
        string written = HtmlReport.Write(outPath, data);
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                path = written,
                layers = data.Info.Layers,
                heads = data.Info.Heads,
                scores = data.Scores.Select(s => s.Name).ToArray(),
                images = data.Images.Count,
                pngs,
            }, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        foreach (var p in pngs)
        {
            stderr.WriteLine($"wrote {p}");
        }
        stdout.WriteLine(written);
        return 0;
    }

    // --png-dir: a figure per score grid, one per chosen (or each score's top) head's pattern, and a vision report's pictures
    private static List<string> WritePngs(ReportData data, string pngDir, IReadOnlyList<HeadId>? pngHeads, TextWriter stderr)
    {
        if (FigureFont.Typeface is null)
        {
            stderr.WriteLine($"warning: {FigureFont.Hint}");
        }
        var pngs = new List<string>();
        foreach (var s in data.Scores)
        {
            string file = Path.GetFullPath(Path.Combine(pngDir, $"scores-{FileName(s.Name)}.png"));
            HeatmapFigure.ScoreGrid(s).Write(file);
            pngs.Add(file);
        }
        var heads = pngHeads ?? data.Scores.Select(s => ReportBuilder.TopTable(s, 1).Rows[0][1]).Distinct().Select(HeadId.Parse).ToArray();
        foreach (var head in heads)
        {
            string file = Path.GetFullPath(Path.Combine(pngDir, $"pattern-{head}.png"));
            HeatmapFigure.Pattern(data.Patterns, head, causal: !data.Bidirectional).Write(file);
            pngs.Add(file);
        }
        foreach (var image in data.Images)
        {
            // a vision report's pictures as the page embeds them: cls-overlay-L.H, patch-overlay-L.H, rollout, cluster-K
            string name = image.Head is { } h ? $"{(image.Section == VisionReport.OverlaySection ? "cls" : "patch")}-overlay-{h}" : FileName(image.Title.Split(':')[0]);
            string file = Path.GetFullPath(Path.Combine(pngDir, $"{name}.png"));
            Figure.WriteFile(file, image.Png);
            pngs.Add(file);
        }
        return pngs;
    }

    /// <summary>A score name as a file name: "attention distance" → "attention-distance".</summary>
    public static string FileName(string name) =>
        string.Concat(name.ToLowerInvariant().Take(48).Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '_' ? ch : '-'));
}
