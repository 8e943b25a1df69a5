using System.Globalization;
using Headwise.Analysis;
using Headwise.Analysis.Detectors;
using Headwise.Analysis.Patterns;
using Headwise.Analysis.Vision;

namespace Headwise.Cli.Commands;

public sealed class HeadsCommand : ICommand
{
    public string Name => "heads";
    public string Summary => "head detectors: previous-token, induction, duplicate-token, sink, entropy, attention distance";
    public string Usage => """
        headwise heads --model M [--tokens IDS] [--seq-len N] [--batch B] [--seed S] [--top K] [--no-bos]
                       [--intervene FILE] [--attention SPEC] [--json]
        headwise heads --model VIT (--image FILE | --image-dir DIR) [--top K] [--clusters K [--seed S]] [--intervene FILE] [--json]
        """;

    public string Description => """
        Scores every head from its attention pattern (definitions in docs/analyses.md):
          prev_token  mean attention from i to i − 1 (i ≥ 1)
          induction   on B random sequences of N tokens repeated twice: mean attention from i in the second half to i − N + 1
          duplicate   on the same sequences: mean attention from i in the second half to i − N
          sink        mean attention on position 0 over queries q ≥ 1
          entropy     entropy of each query's attention row (nats), mean over q ≥ 1
          distance    mean attention distance Σ_k p(q,k)·(q − k) over q ≥ 1
        Random tokens are drawn uniformly from [min(100, V/4), V) minus BOS/EOS, seeded; BOS is prepended when the model
        has one. prev_token, sink, entropy and distance use --tokens exactly as given (nothing prepended), or the repeated
        sequences when --tokens is absent; induction and duplicate always use the repeated sequences.

        On a vision model (ViT) with --image, from the patterns on that image (with --image-dir, each image's scores
        averaged over the images), most local head first (docs/vision.md):
          distance    mean attention distance in patches: Σ_k a(q,k)·‖pos(q) − pos(k)‖ over patch keys (renormalised),
                      mean over patch queries (the ViT paper's, in patches); none (null) for a head on the CLS only
          entropy     entropy of each query's attention row (nats), mean over every query
          cls         mean attention of the patch queries on the CLS
          sink        the most attention one patch draws: max over patch keys of the patch queries' mean attention on it
        --clusters K groups the heads by their attention profile over relative patch offsets (dy, dx) and the CLS,
        averaged over patch queries and images, by k-means (k-means++ seeded by --seed); each cluster's prototype is
        its heads' mean profile, shown by its CLS share and strongest offsets.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("image", "FILE", "a vision model's image (PNG/JPEG, preprocessed as for classify)"),
        CliOption.Text("image-dir", "DIR", "every *.png, *.jpg, *.jpeg in DIR and its sub-folders; the scores are averaged over them"),
        CliOption.Integer("clusters", "K", "with an image: also cluster the heads into at most K groups by attention profile"),
        CliOption.Text("tokens", "IDS", "ids for the pattern scores, e.g. 1,403,407"),
        CliOption.Integer("seq-len", "N", "length of each random half (default 50)"),
        CliOption.Integer("batch", "B", "number of repeated sequences (default 10)"),
        CliOption.Integer("seed", "S", "seed of the random tokens, or of the k-means seeding under --clusters (default 0)"),
        CliOption.Integer("top", "K", "heads listed per detector in the table (default 5)"),
        CliOption.Flag("no-bos", "do not prepend BOS to the repeated sequences"),
        .. CliOption.Noted(RecipeArgs.Options, "(the patterns scored are the recipe's: after soften or redistribute_sink, of its edited weights)"),
        .. AttentionArgs.Options,
        CliOption.Flag("json", "print {\"layers\": L, \"heads\": H, \"scores\": {\"prev_token\": [[...]], \"induction\": ..., \"duplicate\": ...,\n\"sink\": ..., \"entropy\": ..., \"distance\": ...}, \"seq_len\", \"batch\", \"seed\", \"bos\"} (scores [layer][head];\n\"recipe\": name under --intervene)"),
    ];

    public string Examples => """
        Example:
          headwise heads --model ../shared/models/stories260K/stories260K.bin --seq-len 50 --batch 10
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        bool noBos = args.Flag("no-bos");
        string? tokensArg = args.Get("tokens");
        using var loaded = ModelArgs.Load(args);
        if (loaded.Config.Vision is not null || args.Get("image") is not null || args.Get("image-dir") is not null)
        {
            if (args.Has("attention"))
            {
                throw new UsageException("--attention applies to causal text models; an image classifier attends bidirectionally");
            }
            return RunImage(args, loaded, json, stdout, stderr);
        }
        int seqLen = args.GetInt("seq-len", 50, 2, loaded.Config.MaxPositions / 2);
        int batch = args.GetInt("batch", 10, 1, 100_000);
        int seed = args.GetInt("seed", 0);
        int top = args.GetInt("top", 5, 1, 10_000);
        int[]? tokens = tokensArg is null ? null : TextInput.ParseIds(tokensArg);

        var options = new HeadDetectorOptions(seqLen, batch, seed, noBos ? false : null);
        using var applied = RecipeArgs.Apply(args, loaded);
        // the repeated sequences are BOS? + 2 × seq-len tokens (a --tokens run of another length: refused by the inject itself)
        applied?.RequireSourcesCover((noBos || loaded.Config.BosTokenId is null ? 0 : 1) + 2 * seqLen, generation: false);
        var progress = new ProgressBar(stderr, enabled: !json);
        var policy = AttentionArgs.Apply(args, applied?.Model ?? loaded.Model);
        var r = HeadDetectors.Run(applied?.Model ?? loaded.Model, tokens, options, progress, CliMain.Cancellation, RecipeArgs.Hooks(applied));
        if (json)
        {
            var scores = r.All.ToDictionary(x => x.Key, x => x.Scores.Values);
            stdout.WriteLine(AttentionArgs.Json(RecipeArgs.Json(new
            {
                layers = loaded.Config.NLayers,
                heads = loaded.Config.NHeads,
                scores,
                seq_len = seqLen,
                batch,
                seed,
                bos = r.Bos,
            }, applied), policy));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        AttentionArgs.WriteLine(stdout, policy);
        stdout.WriteLine($"{loaded.Config.NLayers} layers × {loaded.Config.NHeads} heads; {batch} random sequences of 2 × {seqLen} tokens{(r.Bos ? " after BOS" : "")} (seed {seed})"
            + (tokens is null ? "" : $"; pattern scores on the {tokens.Length} given tokens"));
        foreach (var (key, scores) in r.All)
        {
            stdout.WriteLine();
            stdout.WriteLine($"{key}: {scores.Definition}");
            bool ascending = key == "entropy"; // the sharpest heads first
            var table = new CliTable("head", ">score");
            foreach (var (head, score) in scores.Ranked(descending: !ascending).Take(top))
            {
                table.Row($"{head}", score.ToString("F4", CultureInfo.InvariantCulture));
            }
            table.Write(stdout);
        }
        return 0;
    }

    // a vision model: distance, entropy and CLS scores of every head on one image, most local first
    private static int RunImage(CliArgs args, LoadedModel loaded, bool json, TextWriter stdout, TextWriter stderr)
    {
        var vision = ImageArgs.RequireVision(loaded, "heads --image");
        if (args.Get("image") is null && args.Get("image-dir") is null)
        {
            throw new UsageException($"{loaded.Path} is a vision model: give --image FILE or --image-dir DIR");
        }
        string[] files = ImageArgs.Files(args, subFolders: true);
        int top = args.GetInt("top", 5, 1, 10_000);
        var processor = ImageArgs.Processor(loaded);
        using var applied = RecipeArgs.Apply(args, loaded);
        var bar = new ProgressBar(stderr, enabled: files.Length > 1 && (!json || !Console.IsErrorRedirected));
        var perImage = new List<VisionHeadScore[]>();
        int rows = 0, columns = 0;
        int? k = args.Has("clusters") ? args.GetInt("clusters", 1, 1, loaded.Config.NLayers * loaded.Config.NHeads) : null;
        int seed = args.GetInt("seed", 0);
        HeadProfiles? profiles = null;
        foreach (string image in files)
        {
            var input = ImageArgs.Read(image, loaded, processor, stderr);
            var p = PatternAnalysis.RunImage(applied?.Model ?? loaded.Model, input, CliMain.Cancellation, RecipeArgs.Hooks(applied));
            var px = input.Pixels!;
            (rows, columns) = (px.Height / vision.PatchSize, px.Width / vision.PatchSize);
            perImage.Add(VisionHeads.Score(p, rows, columns));
            if (k is not null)
            {
                profiles ??= new HeadProfiles(p.Layers, p.Heads, rows, columns);
                profiles.Add(p);
            }
            bar.Report(new AnalysisProgress("images", perImage.Count, files.Length));
        }
        var scores = perImage.Count == 1 ? perImage[0] : VisionHeads.Average(perImage);
        string file = files.Length == 1 ? files[0] : $"{files.Length} images";
        var clusters = profiles is null ? null : PatternClustering.Cluster(profiles, k!.Value, seed);
        if (json)
        {
            var heads = scores.Select(s => new { head = s.Id.ToString(), distance = double.IsNaN(s.Distance) ? (double?)null : s.Distance, entropy = s.Entropy, cls = s.Cls, sink = s.Sink }).ToArray();
            stdout.WriteLine(RecipeArgs.Json(new { layers = loaded.Config.NLayers, heads = loaded.Config.NHeads, grid = new[] { rows, columns }, patch_size = vision.PatchSize, images = files.Length, scores = heads, clusters = clusters is null ? null : ClustersJson(clusters) }, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"{loaded.Config.NLayers} layers × {loaded.Config.NHeads} heads on {file} ({rows}×{columns} patches of {vision.PatchSize} px); most local first");
        var table = new CliTable("head", ">distance", ">entropy", ">cls", ">sink");
        foreach (var s in scores.Take(top))
        {
            table.Row($"{s.Id}", $"{s.Distance:F4}", $"{s.Entropy:F4}", $"{s.Cls:F4}", $"{s.Sink:F4}");
        }
        table.Write(stdout);
        if (clusters is not null)
        {
            stdout.WriteLine();
            stdout.WriteLine($"{clusters.K} clusters by attention profile (k-means, seed {seed}); prototype: CLS share, strongest offsets (dy,dx)");
            for (int c = 0; c < clusters.K; c++)
            {
                var proto = clusters.Prototypes[c];
                stdout.WriteLine($"  cluster {c}: {string.Join(",", clusters.Members(c).Select(h => h.ToString()))}");
                stdout.WriteLine($"    CLS {proto[PatternClusters.ClsIndex]:F3}  " + string.Join("  ", StrongestOffsets(clusters, c, 3).Select(o => $"({o.Dy},{o.Dx}) {o.Share:F3}")));
            }
        }
        return 0;
    }

    // a cluster prototype's largest offset entries, strongest first
    private static (int Dy, int Dx, float Share)[] StrongestOffsets(PatternClusters clusters, int c, int n)
    {
        int R = clusters.Radius;
        return [.. Enumerable.Range(-R, 2 * R + 1).SelectMany(dy => Enumerable.Range(-R, 2 * R + 1).Select(dx => (dy, dx, clusters.Prototypes[c][clusters.Index(dy, dx)])))
            .OrderByDescending(o => o.Item3).Take(n)];
    }

    // {"k", "radius", "assignment": {"L.H": cluster}, "prototypes": [{"cls", "offsets": [side × side, row dy = −R..R]}]}
    private static object ClustersJson(PatternClusters clusters) => new
    {
        k = clusters.K,
        radius = clusters.Radius,
        assignment = clusters.Heads.Select((h, i) => (h, i)).ToDictionary(x => x.h.ToString(), x => clusters.Cluster[x.i]),
        prototypes = clusters.Prototypes.Select(p => new { cls = p[PatternClusters.ClsIndex], offsets = p[1..] }).ToArray(),
    };
}
