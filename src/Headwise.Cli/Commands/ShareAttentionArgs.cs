using System.Globalization;
using Headwise.Restructure;

namespace Headwise.Cli.Commands;

/// <summary><c>headwise convert share-attention</c> [EchoAtt]: its options (--groups, --suggest, --min-similarity) and its run.</summary>
internal static class ShareAttentionArgs
{
    public static readonly string[] Options = ["groups", "min-similarity"];
    public static readonly string[] Flags = ["suggest"];

    public const string Help = """
        share-attention: cross-layer attention sharing [EchoAtt]. In each group (--groups 4-5,6-7: layers 4 and 5, layers 6
        and 7) the later layers reuse the first layer's attention pattern, computed once; they keep their values and output
        projections and lose their query and key projections (fewer parameters, no q·kᵀ, no cached keys). The output is
        Headwise's format: the family's checkpoint without those q/k tensors (GPT-2's and GPT-NeoX's fused q|k|v projections
        keep their value part) and a headwise_shared_attention block in config.json; Headwise loads it, other tools do not.
        A group of one layer shares nothing (lossless). It prints the NLL of the original and the shared model on the
        calibration text. --suggest proposes groups from the similarity of the layers' patterns on the calibration text
        (1 − Jensen–Shannon, head h with head h, averaged over heads; a group grows while the next layer's patterns are at
        least --min-similarity like its first layer's); without --groups it converts with them, without --out it only
        prints them. GPT-2, the Llama family and GPT-NeoX.
        """;

    /// <summary>The options above, declared for convert's option list.</summary>
    public static readonly CliOption[] Declared =
    [
        CliOption.Text("groups", "G", "share-attention: layer groups, comma-separated ranges a-b (or one layer a), ascending, disjoint"),
        CliOption.Flag("suggest", "share-attention: propose groups from the layers' pattern similarity on the calibration text"),
        CliOption.Number("min-similarity", "S", "share-attention: the similarity (0 to 1, default 0.9) a suggested group's layers need"),
    ];

    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr, Func<LoadedModel, int[]> calibration)
    {
        foreach (string other in new[] { "kv-heads", "method", "heads", "by-importance", "kv-fraction", "kv-rank", "rope-dim", "format" }.Where(args.Has))
        {
            throw new UsageException($"--{other} does not apply to convert share-attention");
        }
        bool json = args.Flag("json"), suggest = args.Flag("suggest");
        string? groupsArg = args.Get("groups"), outDir = args.Get("out");
        if (groupsArg is null && !suggest)
        {
            throw new UsageException("give the layer groups: --groups 4-5,6-7, or --suggest to propose them");
        }
        if (outDir is null && !(suggest && groupsArg is null))
        {
            throw new UsageException("missing --out DIR (the directory to write); only --suggest alone prints groups without writing");
        }
        double minSimilarity = args.GetDouble("min-similarity", 0.9);
        if (!(minSimilarity is >= 0 and <= 1))
        {
            throw new UsageException($"--min-similarity {args.Get("min-similarity")}: must be 0 to 1");
        }
        var dtype = CheckpointOutput.DType(args);
        if (outDir is not null)
        {
            CheckpointOutput.RequireNew(outDir);
        }
        using var loaded = ModelArgs.Load(args);
        var c = loaded.Config;
        AttentionSharing.CheckSource(c);
        int[][]? groups = groupsArg is null ? null : AttentionSharing.ParseGroups(groupsArg, c.NLayers);
        int[] ids = calibration(loaded);
        SuggestedGroup[]? suggested = suggest ? AttentionSharing.Suggest(loaded.Model, ids, minSimilarity, CliMain.Cancellation) : null;
        string G(double x) => x.ToString("F3", CultureInfo.InvariantCulture);
        if (suggested is not null && !json)
        {
            stdout.WriteLine(suggested.Length == 0 ? $"suggested    no groups: no next layer's patterns are {G(minSimilarity)} like the layer before it"
                : $"suggested    --groups {AttentionSharing.Format(suggested.Select(s => s.Layers))}   (similarity to each group's first layer: "
                    + string.Join("; ", suggested.Select(s => string.Join(", ", s.Layers.Skip(1).Select((l, i) => $"{l}: {G(s.Similarity[i])}")))) + ")");
        }
        groups ??= suggested is null ? null : [.. suggested.Select(s => s.Layers)];
        if (outDir is null || groups is null)
        {
            if (json)
            {
                stdout.WriteLine(Json.Serialize(new { kind = "share-attention", suggested = suggested?.Select(s => new { layers = s.Layers, similarity = s.Similarity }) }));
            }
            return 0;
        }
        var shared = AttentionSharing.Apply(loaded.Model, groups);
        if (!json)
        {
            stderr.WriteLine("headwise convert: scoring the original and the shared model on the calibration text");
        }
        double before = MlaConversion.Nll(loaded.Model, ids), after;
        long parameters;
        using (var model = Models.TransformerModel.Create(shared))
        {
            after = MlaConversion.Nll(model, ids);
            parameters = model.Config.ParameterCount;
        }
        var files = CheckpointOutput.Write(shared, loaded, args.Get("tokenizer"), outDir, dtype, stderr, "convert");
        int used = Math.Min(ids.Length, c.MaxPositions);
        var sharing = shared.Config.SharedAttention?.Groups ?? [];
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                @out = outDir,
                kind = "share-attention",
                groups = sharing,
                suggested = suggested?.Select(s => new { layers = s.Layers, similarity = s.Similarity }),
                parameters_original = c.ParameterCount,
                parameters,
                calibration_tokens = used,
                nll_original = before,
                nll_converted = after,
                files,
            }));
            return 0;
        }
        string F4(double x) => x.ToString("F4", CultureInfo.InvariantCulture);
        stdout.WriteLine($"converted    {loaded.Path}: {(sharing.Length == 0 ? "no group of two or more layers: nothing shared"
            : string.Join("; ", sharing.Select(g => (g.Length == 2 ? $"layer {g[1]} reuses" : $"layers {string.Join(", ", g.Skip(1))} reuse") + $" layer {g[0]}'s pattern")))}; calibrated on {used} tokens");
        stdout.WriteLine($"parameters   {c.ParameterCount:N0} → {parameters:N0}");
        stdout.WriteLine($"nll          {F4(before)} → {F4(after)} nats/token on the calibration text (Δ {F4(after - before)})");
        stdout.WriteLine($"wrote        {outDir}: {string.Join(", ", files)}");
        return 0;
    }
}
