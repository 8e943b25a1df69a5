using System.Globalization;
using Headwise.Analysis;
using Headwise.Analysis.Patterns;
using Headwise.Analysis.Vision;

namespace Headwise.Cli.Commands;

public sealed class PatternsCommand : ICommand
{
    public string Name => "patterns";
    public string Summary => "attention patterns of every head on a prompt";
    public string Usage => """
        headwise patterns --model M (--text "..." | --tokens IDS) [--head L.H] [--no-bos] [--intervene FILE] [--json]
        headwise patterns --model VIT --image FILE [--head L.H] [--query-patch R,C|centre | --rollout] [--overlay FILE]
                          [--intervene FILE] [--json]
        """;

    public string Description => """
        Runs the prompt once and reads blocks.L.attn.hook_pattern. The table shows one head (--head, default 0.0) as a
        matrix: one row per query position, one column per key position, in percent (blank above the diagonal).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("text", "S", "the prompt (BOS prepended when the tokenizer adds one)"),
        CliOption.Text("tokens", "IDS", "explicit ids, e.g. 1,403,407 — nothing prepended"),
        CliOption.Text("head", "L.H", "the head to show or, with --json, to print alone"),
        CliOption.Flag("no-bos", "do not prepend BOS to the text"),
        CliOption.Text("image", "FILE", "for a vision model (ViT): the image (PNG/JPEG, preprocessed as for classify); position 0 is\nthe CLS, 1 + r·columns + c the patch in row r, column c. The table is then the CLS's attention\nover the patch grid (and on itself), in percent"),
        ImageArgs.QueryPatchOption,
        CliOption.Text("overlay", "FILE", "with --image: also draw the table's row (the CLS's, the chosen patch's or the rollout's) as a\nPNG heat overlay on the preprocessed image (viridis, yellow = the largest; a chosen patch outlined)"),
        CliOption.Flag("rollout", "with --image: attention rollout (Abnar & Zuidema) instead of one head — per layer\n(mean over heads + I) / 2, rows renormalised, multiplied through the layers; the table is the\nCLS's row over the patch grid; --json prints {\"tokens\", \"layers\", \"rollout\": [T·T]}"),
        .. CliOption.Noted(RecipeArgs.Options, "(the patterns shown are as the recipe leaves them, e.g. softened)"),
        CliOption.Flag("json", "print {\"tokens\": [...], \"token_ids\": [...], \"layers\": L, \"heads\": H, \"patterns\": [layer][head][T·T]}\n(row-major T × T); with --head, \"head\": \"L.H\" and \"pattern\": [T·T] instead of \"patterns\";\n\"recipe\": name under --intervene"),
    ];

    public string Examples => """
        Example:
          headwise patterns --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --text "Once upon a time" --head 1.3
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        using var loaded = ModelArgs.Load(args);
        if (loaded.Config.Vision is not null)
        {
            return RunImage(args, loaded, json, stdout, stderr);
        }
        if (args.Get("image") is not null || args.Flag("rollout") || args.Has("query-patch") || args.Has("overlay"))
        {
            ImageArgs.RequireVision(loaded, args.Flag("rollout") ? "patterns --rollout" : args.Has("query-patch") ? "patterns --query-patch" : "patterns --image");
        }
        int[] ids = PromptArgs.Read(args, loaded);
        string? headArg = args.Get("head");
        HeadId? head = headArg is null ? null : HeadId.ParseList(headArg, loaded.Config.NLayers, loaded.Config.NHeads).Single();

        using var applied = RecipeArgs.Apply(args, loaded);
        applied?.RequireSourcesCover(ids.Length, generation: false);
        var p = PatternAnalysis.Run(applied?.Model ?? loaded.Model, ids, loaded.Tokenizer, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        if (json)
        {
            if (head is { } h)
            {
                stdout.WriteLine(RecipeArgs.Json(new { tokens = p.Tokens, token_ids = p.TokenIds, layers = p.Layers, heads = p.Heads, head = h.ToString(), pattern = p.Patterns[h.Layer][h.Head] }, applied));
            }
            else
            {
                stdout.WriteLine(RecipeArgs.Json(new { tokens = p.Tokens, token_ids = p.TokenIds, layers = p.Layers, heads = p.Heads, patterns = p.Patterns }, applied));
            }
            return 0;
        }
        var shown = head ?? new HeadId(0, 0);
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"head {shown}: attention of each query (row) on each key (column), percent");
        var labels = p.Tokens.Select(Label).ToArray();
        // one row per query, one column per key (numbered; the legend below names them); blank above the diagonal
        var table = new CliTable([">", .. Enumerable.Range(0, p.Length).Select(k => $">{k}")]);
        for (int q = 0; q < p.Length; q++)
        {
            table.Row([labels[q], .. Enumerable.Range(0, p.Length).Select(k => k > q ? "" : (100 * p.At(shown, q, k)).ToString("F0", CultureInfo.InvariantCulture))]);
        }
        table.Write(stdout);
        stdout.WriteLine();
        stdout.WriteLine(string.Join("  ", labels.Select((l, i) => $"{i}={l}")));
        return 0;
    }

    // a vision model: one image; the text output is the CLS row laid out as the patch grid
    private static int RunImage(CliArgs args, LoadedModel loaded, bool json, TextWriter stdout, TextWriter stderr)
    {
        string file = args.Get("image") ?? throw new UsageException($"{loaded.Path} is a vision model: give --image FILE");
        var input = ImageArgs.Read(file, loaded, ImageArgs.Processor(loaded), stderr);
        string? headArg = args.Get("head");
        HeadId? head = headArg is null ? null : HeadId.ParseList(headArg, loaded.Config.NLayers, loaded.Config.NHeads).Single();
        bool rollout = args.Flag("rollout");
        if (rollout && head is not null)
        {
            throw new UsageException("give either --head or --rollout (which averages every head)");
        }
        var px = input.Pixels!;
        int patch = loaded.Config.Vision!.PatchSize, rows = px.Height / patch, columns = px.Width / patch;
        var queryPatch = ImageArgs.QueryPatch(args, rows, columns);
        if (rollout && queryPatch is not null)
        {
            throw new UsageException("give either --query-patch or --rollout (which follows the CLS)");
        }
        // the query whose row is shown: the CLS (0), or patch (r, c) at 1 + r·columns + c
        int query = queryPatch is var (qr, qc) ? 1 + qr * columns + qc : 0;
        using var applied = RecipeArgs.Apply(args, loaded);
        var p = PatternAnalysis.RunImage(applied?.Model ?? loaded.Model, input, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        if (rollout)
        {
            var r = AttentionRollout.Compute(p);
            WriteOverlay(args, px, rows, columns, r.AsSpan(1, rows * columns), null, stderr);
            if (json)
            {
                stdout.WriteLine(RecipeArgs.Json(new { tokens = p.Tokens, layers = p.Layers, rollout = r }, applied));
                return 0;
            }
            RecipeArgs.WriteLine(stdout, applied);
            stdout.WriteLine($"attention rollout through {p.Layers} layers: the CLS's share from each patch ({rows}×{columns} grid), percent; from itself {(100 * r[0]).ToString("F1", CultureInfo.InvariantCulture)}%");
            WriteGrid(stdout, rows, columns, k => r[k]);
            return 0;
        }
        var shown = head ?? new HeadId(0, 0);
        var row = p.Patterns[shown.Layer][shown.Head].AsSpan(query * p.Length, p.Length);
        WriteOverlay(args, px, rows, columns, row[1..], queryPatch is var (pr, pc) ? pr * columns + pc : null, stderr);
        if (json && queryPatch is var (jr, jc))
        {
            // the chosen patch's attention row (CLS first, then the patches) of one head or of every head
            float[] Row(int l, int h) => p.Patterns[l][h].AsSpan(query * p.Length, p.Length).ToArray();
            var every = Enumerable.Range(0, p.Layers).Select(l => Enumerable.Range(0, p.Heads).Select(h => Row(l, h)).ToArray()).ToArray();
            object result = head is { } hd
                ? new { tokens = p.Tokens, layers = p.Layers, heads = p.Heads, query_patch = new[] { jr, jc }, query, head = hd.ToString(), attention = Row(hd.Layer, hd.Head) }
                : new { tokens = p.Tokens, layers = p.Layers, heads = p.Heads, query_patch = new[] { jr, jc }, query, attention = every };
            stdout.WriteLine(RecipeArgs.Json(result, applied));
            return 0;
        }
        if (json)
        {
            object result = head is { } h
                ? new { tokens = p.Tokens, layers = p.Layers, heads = p.Heads, head = h.ToString(), pattern = p.Patterns[h.Layer][h.Head] }
                : new { tokens = p.Tokens, layers = p.Layers, heads = p.Heads, patterns = p.Patterns };
            stdout.WriteLine(RecipeArgs.Json(result, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        if (queryPatch is var (tr, tc))
        {
            stdout.WriteLine($"head {shown}: attention of patch {tr},{tc} (position {query}) on each patch ({rows}×{columns} grid), percent; on the CLS {(100 * p.At(shown, query, 0)).ToString("F1", CultureInfo.InvariantCulture)}%");
        }
        else
        {
            stdout.WriteLine($"head {shown}: attention of the CLS on each patch ({rows}×{columns} grid), percent; on itself {(100 * p.At(shown, 0, 0)).ToString("F1", CultureInfo.InvariantCulture)}%");
        }
        WriteGrid(stdout, rows, columns, k => p.At(shown, query, k));
        return 0;
    }

    // --overlay FILE: the patch weights as a heat overlay on the preprocessed image (the query patch, if any, outlined)
    private static void WriteOverlay(CliArgs args, Models.ImagePixels px, int rows, int columns, ReadOnlySpan<float> weights, int? outlined, TextWriter stderr)
    {
        if (args.Get("overlay") is not { } file)
        {
            return;
        }
        var picture = Reports.VisionReport.Overlay(Reports.VisionReport.Display(px), weights, rows, columns);
        if (outlined is { } q)
        {
            picture = Reports.VisionReport.Outline(picture, q, rows, columns);
        }
        Reports.Figure.WriteFile(file, Reports.Png.Encode(picture));
        stderr.WriteLine($"wrote {file}");
    }

    // the CLS's row over the patch grid: value(1 + r·columns + c) at row r, column c, in percent; rows and columns numbered
    // as --query-patch R,C counts them
    private static void WriteGrid(TextWriter stdout, int rows, int columns, Func<int, float> value)
    {
        var table = new CliTable([">", .. Enumerable.Range(0, columns).Select(c => $">{c}")]);
        for (int r = 0; r < rows; r++)
        {
            table.Row([r.ToString(CultureInfo.InvariantCulture),
                .. Enumerable.Range(0, columns).Select(c => (100 * value(1 + r * columns + c)).ToString("F1", CultureInfo.InvariantCulture))]);
        }
        table.Write(stdout);
    }

    // A token's text made printable on one line, at most 12 characters.
    private static string Label(string s)
    {
        s = s.Replace("\n", "\\n", StringComparison.Ordinal).Replace("\t", "\\t", StringComparison.Ordinal);
        return s.Length > 12 ? s[..12] : s;
    }
}
