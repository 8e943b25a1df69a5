using Headwise.Analysis.Vision;
using Headwise.Evaluation;

namespace Headwise.Cli.Commands;

public sealed class EvalCommand : ICommand
{
    public string Name => "eval";
    public string Summary => "negative log-likelihood and perplexity of a text file or token ids";
    public string Usage => """
        headwise eval --model M (--text-file F | --text "..." | --tokens 1,403,407) [--window N] [--stride S] [--intervene FILE] [--attention SPEC] [--json]
        headwise eval --model VIT --image-dir DIR [--labels FILE] [--prune-tokens KEEP [--prune-layers L,...] [--head-weights FILE]]
                      [--sparsifiner K[,rank:R]] [--intervene FILE] [--json]
        """;

    public string Description => """
        Scores every token after the first: nll[i] = −log p(token[i+1] | tokens[..i]), in nats. Texts longer than the
        window are scored with a sliding window (as Hugging Face's perplexity guide does): each window of N tokens
        advances by S, and only the tokens not scored before are scored, each with at least N − S tokens of context.

        On an image classifier (ViT) with --image-dir: accuracy (top label = true label) and mean cross-entropy
        −log p(true label) in nats over labelled images, preprocessed as for classify (docs/vision.md).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("text-file", "F", "the text to score (UTF-8; BOS prepended when the tokenizer adds one)"),
        CliOption.Text("text", "S", "the text, inline"),
        CliOption.Text("tokens", "IDS", "explicit ids, e.g. 1,403,407 — no tokenizer involved, nothing prepended"),
        CliOption.Integer("window", "N", "context window (default: the model's context)"),
        CliOption.Integer("stride", "S", "how far each window advances (default: window / 2; below the window)"),
        CliOption.Flag("no-bos", "do not prepend BOS to the text"),
        .. ImageArgs.LabelsOptions,
        .. ImageArgs.PruningOptions,
        .. ImageArgs.SparsifinerOptions,
        .. RecipeArgs.Options,
        .. AttentionArgs.Options,
        CliOption.Flag("json", "print {\"tokens\": [...], \"nll\": [...], \"mean_nll\": x, \"perplexity\": y} (and \"recipe\": name\nunder --intervene; \"attention\": spec, \"density\": d under --attention); with --image-dir, {\"images\": N, \"correct\": n, \"accuracy\": x,\n\"mean_cross_entropy\": y, \"labels\": [...], \"predicted\": [...], \"forward_seconds\": s,\n\"images_per_second\": r, \"tokens_kept\": share} (ids in file order; tokens_kept: the mean share\nof tokens the blocks ran on, 1 without --prune-tokens)"),
    ];

    public string Examples => """
        Example:
          headwise eval --model ../shared/models/stories260K/stories260K.bin --tokens 1,403,407,261,378
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        bool noBos = args.Flag("no-bos");
        if (args.Has("image-dir") || args.Has("labels") || args.Has("prune-tokens") || args.Has("sparsifiner"))
        {
            return RunImages(args, json, stdout, stderr);
        }
        string? tokensArg = args.Get("tokens");
        string? text = tokensArg is null ? TextInput.Read(args) : null;
        if (tokensArg is not null && (args.Has("text") || args.Has("text-file")))
        {
            throw new UsageException("give either --tokens or a text, not both");
        }
        using var loaded = ModelArgs.Load(args);
        if (loaded.Config.Vision is not null)
        {
            throw new UsageException($"{loaded.Path}: a {loaded.Config.ModelType} model reads images, not text or token ids (eval --image-dir DIR scores labelled images; docs/vision.md)");
        }
        int window = args.GetInt("window", loaded.Config.MaxPositions, 2, loaded.Config.MaxPositions);
        int stride = args.GetInt("stride", Math.Max(1, window / 2), 1, window);
        int[] ids = tokensArg is not null ? TextInput.ParseIds(tokensArg) : loaded.RequireTokenizer().Encode(text!, addSpecial: !noBos);

        var progress = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected).Stage("scoring tokens");
        using var applied = RecipeArgs.Apply(args, loaded);
        applied?.RequireSourcesCover(ids.Length, generation: false);
        var policy = AttentionArgs.Apply(args, applied?.Model ?? loaded.Model);
        var result = Perplexity.Evaluate(applied?.Model ?? loaded.Model, ids, window, stride, progress, CliMain.Cancellation, applied?.CreateHooks());
        if (json)
        {
            stdout.WriteLine(AttentionArgs.Json(applied is null
                ? Json.Serialize(new { tokens = ids, nll = result.Nll, mean_nll = result.MeanNll, perplexity = result.Perplexity })
                : Json.Serialize(new { tokens = ids, nll = result.Nll, mean_nll = result.MeanNll, perplexity = result.Perplexity, recipe = applied.Recipe.Name }), policy));
            return 0;
        }
        if (applied is not null)
        {
            stdout.WriteLine($"recipe       {RecipeArgs.Describe(applied)}");
        }
        AttentionArgs.WriteLine(stdout, policy);
        stdout.WriteLine($"tokens       {ids.Length} ({result.Nll.Length} predicted)");
        stdout.WriteLine($"window       {Math.Min(window, ids.Length)} (stride {stride}, {result.Windows} forward pass{(result.Windows == 1 ? "" : "es")})");
        stdout.WriteLine($"mean nll     {result.MeanNll:F4} nats/token");
        stdout.WriteLine($"perplexity   {result.Perplexity:F4}");
        return 0;
    }

    // an image classifier over labelled images: accuracy and mean cross-entropy
    private static int RunImages(CliArgs args, bool json, TextWriter stdout, TextWriter stderr)
    {
        if (args.Has("attention"))
        {
            throw new UsageException("--attention applies to causal text models; an image classifier attends bidirectionally");
        }
        if (args.Has("text") || args.Has("text-file") || args.Has("tokens"))
        {
            throw new UsageException("give either --image-dir or a text/--tokens, not both");
        }
        using var loaded = ModelArgs.Load(args);
        var vision = ImageArgs.RequireVision(loaded, "eval --image-dir");
        var files = ImageArgs.LabelledFiles(args, vision);
        var pruning = ImageArgs.Pruning(args, loaded.Config);
        var sparse = ImageArgs.Sparsifiner(args, loaded);
        var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        using var applied = RecipeArgs.Apply(args, loaded);
        ImageArgs.UseSparsifiner(applied?.Model ?? loaded.Model, sparse);
        var r = ImageEvaluation.Evaluate(applied?.Model ?? loaded.Model, ImageArgs.ReadLabelled(files, loaded, stderr), bar, files.Length,
            CliMain.Cancellation, RecipeArgs.Hooks(applied), pruning);
        double perSecond = r.Images / Math.Max(r.ForwardSeconds, 1e-9);
        if (json)
        {
            stdout.WriteLine(RecipeArgs.Json(new
            {
                images = r.Images,
                correct = r.Correct,
                accuracy = r.Accuracy,
                mean_cross_entropy = r.MeanCrossEntropy,
                labels = files.Select(f => f.Label).ToArray(),
                predicted = r.Predicted,
                forward_seconds = r.ForwardSeconds,
                images_per_second = perSecond,
                tokens_kept = r.TokensKept,
                attention_density = sparse?.Plan.Density(vision.SequenceLength) ?? 1.0,
            }, applied));
            return 0;
        }
        RecipeArgs.WriteLine(stdout, applied);
        stdout.WriteLine($"images              {r.Images}");
        stdout.WriteLine($"accuracy            {r.Accuracy:F4} ({r.Correct}/{r.Images})");
        stdout.WriteLine($"mean cross-entropy  {r.MeanCrossEntropy:F4} nats");
        if (pruning is not null)
        {
            stdout.WriteLine($"token pruning       keep {pruning.Keep:0.###} after blocks {string.Join(",", pruning.Layers)}: the blocks ran on {r.TokensKept:P1} of the tokens");
        }
        if (sparse is not null)
        {
            stdout.WriteLine($"sparsifiner         {sparse.Plan.KeysPerQuery} keys per query (rank {sparse.Plan.Rank}): attention density {sparse.Plan.Density(vision.SequenceLength):P1}");
        }
        stdout.WriteLine($"speed               {perSecond:F1} images/s (forwards only, {r.ForwardSeconds:F3} s)");
        return 0;
    }
}
