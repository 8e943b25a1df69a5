using System.Globalization;
using Headwise.Interventions;
using Headwise.Training;
using Headwise.Training.Experiments;

namespace Headwise.Cli.Commands;

public sealed class ExperimentCommand : ICommand
{
    public string Name => "experiment";
    public string Summary => "reproduce a finding (small trained models, or interventions on a model): induction | ocr | icl-regression | list-recall | talking-heads | factual-recall | sink-redistribution | variants";
    public IReadOnlyList<CliArgument> Arguments { get; } = [new("NAME", "the experiment: induction | ocr | icl-regression | list-recall | talking-heads | factual-recall |\nsink-redistribution | variants")];
    public string Usage => """
        headwise experiment induction|ocr|icl-regression|list-recall|talking-heads|factual-recall|sink-redistribution --out DIR [--steps N] [--seed S] [--json]
        """;

    public string Description => """
        Trains small models on a synthetic task, seeded, and writes DIR/report.md (numbers, head analyses),
        DIR/result.json and PNG figures (loss curve; heatmaps for icl-regression). Each runs in about a minute on 2 cores.

          induction        two-layer attention-only model on repeated random sequences: the repeated-copy loss drops
                           when a previous-token head (layer 0) and an induction head (layer 1) form; scores per head
          ocr              out-of-context reasoning: one-layer attention-only models with factored W_O·W_V vs combined
                           W_OV on facts + implications; accuracy on held-out implications, nuclear norm of W_OV
          icl-regression   in-context linear regression with one softmax attention layer: H heads vs one head with the
                           same parameter count; in-context MSE and the trained KQ / OV structure (heatmaps)
          list-recall      recall from a list (Talking Heads): a 2-layer GPT-2 names the item left out of a repeated,
                           shuffled list; held-out accuracy vs chance, and where each head looks from the answer
          talking-heads    the list-recall model exported (DIR/model); the writer (layer 0) → reader (layer 1) pair of
                           largest composition and the low-rank channel between the writer's OV and the reader's QK
                           (SVD); edit_ov / edit_qk recipes (DIR/recipes) remove or amplify it, or a control; held-out
                           accuracy overall and by the left-out item's position in the list
          factual-recall   a 2-layer GPT-2 on memorised facts plus counterfactual in-context prefixes; the head with the
                           largest DLA toward the in-context answer, and a scale recipe on it swept over 0…4: how often
                           the in-context vs the memorised answer wins on held-out prompts
          sink-redistribution  no training: on stories260K (../shared/models/stories260K) and the demo model
                           (models/demo), the sinks analysis finds the sink layers on a fixed text, then redistribute_sink
                           over fractions 0, 0.1, …, 1 gives the text's loss change per fraction (table, chart, recipes)
          variants         every attention variant `headwise train` offers (softmax, symmetric_qk, collapsed_qk,
                           moh, linear, sinkhorn, affine_scaled, gaussian, low_rank, relative_conv, random_features,
                           dynamic_mask, tensor; docs/variants.md) trained on one task with the same shape, seed, data
                           and steps: held-out loss and accuracy, parameters, seconds, and (induction) the best induction
                           and previous-token head scores. No --out needed:
                           headwise experiment variants [--task induction|list-recall|icl-regression] [--quick] [--steps N]
                                                        [--seed S] [--lr X[,Y…]] [--only V[,W…]] [--json]
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Text("out", "DIR", "output directory (created)"),
        CliOption.Integer("steps", "N", "training steps (defaults: induction 3000, ocr 1500, icl-regression 2000, list-recall 1500,\ntalking-heads 1500, factual-recall 2000)"),
        CliOption.Integer("seed", "S", "seed of initialization and data (default 0)"),
        CliOption.Number("lr", "X", "learning rate (defaults: induction 1e-2 Adam, ocr 0.5 gradient descent, icl-regression 1e-2 Adam,\nlist-recall 3e-3 Adam, factual-recall 3e-3 Adam); variants: a comma list is a sweep, every\nvariant trained once per rate (--lr 3e-3,1e-2,3e-2)"),
        CliOption.Integer("batch", "N", "sequences per step (induction, icl-regression, list-recall, factual-recall; defaults 8, 32, 32, 64)"),
        CliOption.Number("init", "X", "standard deviation of the initialization (defaults: induction 0.1, ocr 0.01, icl-regression 0.1,\nlist-recall 0.02, factual-recall 0.02)\n(talking-heads trains list-recall's model with its defaults: only --steps and --seed apply)"),
        CliOption.Flag("json", "print the result record as JSON instead of the summary"),
        CliOption.Text("model", "M", "sink-redistribution: only this model (with --tokenizer T for a llama2.c .bin)"),
        CliOption.Text("tokenizer", "T", "sink-redistribution: the tokenizer of a llama2.c --model"),
        CliOption.Text("text-file", "F", "sink-redistribution: the text with --model (default docs/examples/texts/story.txt)"),
        CliOption.Text("task", "T", "variants: induction (default), list-recall, or icl-regression (the regression prompts fed as\nvectors to a one-layer attention-only model; loss = mean squared error, chance = predicting 0)"),
        CliOption.Text("only", "V,W", "variants: train only these variants (default all)"),
        CliOption.Flag("quick", "variants: a short budget (induction 2000 steps, list-recall 800), all thirteen in a few minutes; the\nfull budget is the task experiment's default (3000 / 1500 steps)"),
    ];

    public string Examples => """
        Example:
          headwise experiment induction --out runs/induction
        """;

    private static int RunVariants(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        foreach (var name in new[] { "out", "batch", "init", "model", "tokenizer", "text-file" })
        {
            if (args.Has(name)) throw new UsageException($"--{name} does not apply to `experiment variants` (it takes --task, --quick, --steps, --seed, --lr, --only, --json)");
        }
        string task = args.Get("task") ?? "induction";
        if (!VariantsOptions.Tasks.Contains(task))
        {
            throw new UsageException($"--task: unknown task '{task}' (known: {string.Join(", ", VariantsOptions.Tasks)})");
        }
        bool json = args.Flag("json");
        var o = new VariantsOptions(task, args.Flag("quick"), args.Has("steps") ? args.GetInt("steps", 0, 1, 10_000_000) : null, args.GetInt("seed", 0),
            args.Get("only") is string only ? VariantNames(only) : null, args.Get("lr") is string lr ? LearningRates(lr) : null);
        var progress = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        var r = VariantsExperiment.Run(o, progress, CliMain.Cancellation);
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                task = r.Task,
                chance_loss = r.ChanceLoss,
                chance_accuracy = r.ChanceAccuracy,
                baseline_loss = r.BaselineLoss,
                steps = r.Steps,
                heldout_samples = r.HeldoutSamples,
                variants = r.Variants.Select(v => new
                {
                    variant = v.Variant,
                    heldout_loss = v.HeldoutLoss,
                    heldout_accuracy = v.HeldoutAccuracy,
                    parameters = v.Parameters,
                    seconds = v.Seconds,
                    induction_score = v.InductionScore,
                    previous_token_score = v.PreviousTokenScore,
                    induction_head = v.InductionHead,
                    previous_token_head = v.PreviousTokenHead,
                    training_only = v.TrainingOnly,
                    learning_rate = v.LearningRate,
                }),
            }));
            return 0;
        }
        string F(double? v) => v is double d ? d.ToString("F3", CultureInfo.InvariantCulture) : "-";
        stdout.WriteLine($"task {r.Task}, {r.Steps} steps per variant, {r.HeldoutSamples} held-out samples; chance loss {F(r.ChanceLoss)}, chance accuracy {F(r.ChanceAccuracy)}"
            + (r.BaselineLoss is double bl ? $", least-squares loss {F(bl)} (losses are mean squared errors)" : ""));
        var table = new CliTable("variant", ">lr", ">loss", ">accuracy", ">params", ">seconds", ">induction", "head", ">prev-token", "head");
        foreach (var v in r.Variants)
        {
            table.Row(v.Variant, v.LearningRate.ToString("G3", CultureInfo.InvariantCulture), F(v.HeldoutLoss), F(v.HeldoutAccuracy), $"{v.Parameters}",
                v.Seconds.ToString("F1", CultureInfo.InvariantCulture), F(v.InductionScore), v.InductionHead ?? "-", F(v.PreviousTokenScore), v.PreviousTokenHead ?? "-");
        }
        table.Write(stdout);
        return 0;
    }

    // --lr 3e-3,1e-2,3e-2: the sweep's learning rates
    private static double[] LearningRates(string list)
    {
        var rates = list.Split(',', StringSplitOptions.TrimEntries).Select(x =>
            double.TryParse(x, NumberStyles.Float, CultureInfo.InvariantCulture, out var lr) && lr > 0 && double.IsFinite(lr) ? lr
            : throw new UsageException($"--lr: expected positive learning rates separated by commas, like 3e-3,1e-2,3e-2 (got '{x}')")).ToArray();
        return rates;
    }

    // --only softmax,moh: a subset of the variants, in the order given
    private static string[] VariantNames(string list)
    {
        var names = list.Split(',', StringSplitOptions.TrimEntries);
        foreach (var n in names)
        {
            if (!AttentionVariants.All.Contains(n)) throw new UsageException($"--only: unknown variant '{n}' (known: {string.Join(", ", AttentionVariants.All)})");
        }
        return names;
    }

    // sink-redistribution: --model (with --text-file) or, by default, stories260K on the story text and the demo model on the address
    private static SinkRedistributionResult RunSinkRedistribution(CliArgs args, CancellationToken ct)
    {
        (string Model, string? Tokenizer, string Text)[] runs = args.Has("model")
            ? [(args.Get("model")!, args.Get("tokenizer"), args.Get("text-file") ?? Path.Combine("docs", "examples", "texts", "story.txt"))]
            : [(Path.Combine("..", "shared", "models", "stories260K", "stories260K.bin"), Path.Combine("..", "shared", "models", "stories260K", "tok512.bin"), Path.Combine("docs", "examples", "texts", "story.txt")),
               (Path.Combine("models", "demo"), null, Path.Combine("docs", "examples", "texts", "address.txt"))];
        var models = new List<SinkRedistributionModel>();
        foreach (var (model, tokenizer, text) in runs)
        {
            if (!File.Exists(text))
            {
                throw new UsageException($"--text-file {text}: file not found (run from the repository root, or give --text-file)");
            }
            using var loaded = ModelLoader.Load(ModelArgs.ResolveModel(model), tokenizer);
            var ids = loaded.RequireTokenizer().Encode(File.ReadAllText(text), addSpecial: true);
            string name = Directory.Exists(model) ? Path.GetFileName(Path.TrimEndingDirectorySeparator(model)) : Path.GetFileNameWithoutExtension(model);
            models.Add(SinkRedistributionExperiment.Run(loaded.Model, name, ids, text, cancel: ct));
        }
        return new SinkRedistributionResult([.. models]);
    }

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Positional.Count != 1)
        {
            throw new UsageException("expected one experiment: induction, ocr, icl-regression, list-recall, talking-heads, factual-recall, sink-redistribution or variants");
        }

        string which = args.Positional[0];
        if (which == "variants")
        {
            return RunVariants(args, stdout, stderr);
        }
        if (args.Has("task") || args.Flag("quick") || args.Has("only"))
        {
            throw new UsageException("--task, --only and --quick apply to `experiment variants` only");
        }
        string dir = args.Require("out", "output directory");
        int? steps = args.Has("steps") ? args.GetInt("steps", 0, 1, 10_000_000) : null;
        int seed = args.GetInt("seed", 0);
        double? lr = args.Has("lr") ? args.GetDouble("lr", 0, 1e-9, 1e3) : null;
        int? batch = args.Has("batch") ? args.GetInt("batch", 0, 1, 1 << 16) : null;
        double? init = args.Has("init") ? args.GetDouble("init", 0, 0, 10) : null;
        bool json = args.Flag("json");
        var progress = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
        var ct = CliMain.Cancellation;
        string F(double v, int d = 3) => v.ToString("F" + d, CultureInfo.InvariantCulture);
        switch (which)
        {
            case "list-recall":
                {
                    var o = new ListRecallOptions(Seed: seed);
                    o = o with { Steps = steps ?? o.Steps, LearningRate = lr ?? o.LearningRate, Batch = batch ?? o.Batch, InitStd = init ?? o.InitStd };
                    var r = ListRecallExperiment.Run(o, progress, ct);
                    string path = ExperimentReports.WriteListRecall(r, dir);
                    if (json)
                    {
                        stdout.WriteLine(Json.Serialize(r));
                        return 0;
                    }

                    stdout.WriteLine($"held-out accuracy {F(r.FinalAccuracy)} (chance {F(r.ChanceAccuracy)}); answer loss {F(r.Curve[^1].Loss)}");
                    var table = new CliTable("head", ">on left-out", ">on other listed", ">on repeated list");
                    foreach (var h in r.Heads)
                    {
                        table.Row($"{h.Layer}.{h.Head}", F(h.OnMissingItem), F(h.OnOtherFirstListItem), F(h.OnSecondListItem));
                    }
                    table.Write(stdout);

                    stdout.WriteLine(path);
                    return 0;
                }

            case "talking-heads":
                {
                    if (lr is not null || batch is not null || init is not null)
                    {
                        throw new UsageException("talking-heads trains list-recall's model with its defaults: only --steps and --seed apply");
                    }

                    var o = new TalkingHeadsOptions(Seed: seed);
                    o = o with { Steps = steps ?? o.Steps };
                    var r = TalkingHeadsExperiment.Run(o, dir, progress, ct);
                    string path = FindingsReports.WriteTalkingHeads(r, dir);
                    if (json)
                    {
                        stdout.WriteLine(Json.Serialize(r));
                        return 0;
                    }

                    stdout.WriteLine($"writer {r.Writer.Layer}.{r.Writer.Head} -> reader {r.Reader.Layer}.{r.Reader.Head} ({r.Composition}-composition {F(r.CompositionScore)}); channel [{string.Join(",", r.Channel)}] / [{string.Join(",", r.ReaderChannel)}]");
                    var table = new CliTable("model", ">accuracy", "by position");
                    table.Row("original", F(r.Original.Accuracy), string.Join(" ", r.Original.AccuracyByPosition.Select(a => F(a))));
                    foreach (var e in r.Edits)
                    {
                        table.Row(e.Name, F(e.Score.Accuracy), string.Join(" ", e.Score.AccuracyByPosition.Select(a => F(a))));
                    }
                    table.Write(stdout);

                    stdout.WriteLine(path);
                    return 0;
                }

            case "factual-recall":
                {
                    var o = new FactualRecallOptions(Seed: seed);
                    o = o with { Steps = steps ?? o.Steps, LearningRate = lr ?? o.LearningRate, Batch = batch ?? o.Batch, InitStd = init ?? o.InitStd };
                    var r = FactualRecallExperiment.Run(o, dir, progress, ct);
                    string path = FindingsReports.WriteFactualRecall(r, dir);
                    if (json)
                    {
                        stdout.WriteLine(Json.Serialize(r));
                        return 0;
                    }

                    stdout.WriteLine($"head {r.Head.Layer}.{r.Head.Head} (largest DLA toward the in-context answer); {r.HeldOutPrompts} held-out counterfactual prompts");
                    var table = new CliTable(">factor", ">in-context", ">memorised", ">argmax-in", ">argmax-mem", ">facts");
                    foreach (var p in r.Sweep)
                    {
                        table.Row(F(p.Factor, 2), F(p.InContextWins), F(p.MemorisedWins), F(p.ArgmaxInContext), F(p.ArgmaxMemorised), F(p.FactAccuracy));
                    }
                    table.Write(stdout);

                    stdout.WriteLine(path);
                    return 0;
                }

            case "induction":
                {
                    var o = new InductionOptions(Seed: seed);
                    o = o with { Steps = steps ?? o.Steps, LearningRate = lr ?? o.LearningRate, Batch = batch ?? o.Batch, InitStd = init ?? o.InitStd };
                    var r = InductionExperiment.Run(o, progress, ct);
                    string path = ExperimentReports.WriteInduction(r, dir);
                    if (json)
                    {
                        stdout.WriteLine(Json.Serialize(r));
                        return 0;
                    }

                    stdout.WriteLine($"chance {F(r.ChanceLoss)}  final loss: first copy {F(r.FinalLossFirstCopy)}, repeated copy {F(r.FinalLossRepeat)}; drop at step {(r.DropStep?.ToString(CultureInfo.InvariantCulture) ?? "none")}");
                    var table = new CliTable("head", ">induction", ">prev-token");
                    foreach (var h in r.Heads)
                    {
                        table.Row($"{h.Layer}.{h.Head}", F(h.Induction), F(h.PreviousToken));
                    }
                    table.Write(stdout);

                    stdout.WriteLine(path);
                    return 0;
                }

            case "ocr":
                {
                    var o = new OcrOptions(Seed: seed);
                    o = o with { Steps = steps ?? o.Steps, LearningRate = lr ?? o.LearningRate, InitStd = init ?? o.InitStd };
                    var r = OcrExperiment.Run(o, progress, ct);
                    string path = ExperimentReports.WriteOcr(r, dir);
                    if (json)
                    {
                        stdout.WriteLine(Json.Serialize(r));
                        return 0;
                    }

                    stdout.WriteLine($"held-out implications: {r.HeldOutExamples}, chance {F(r.ChanceAccuracy)}");
                    var table = new CliTable("model", ">train-acc", ">held-out-acc", ">nuclear-norm(W_OV)");
                    foreach (var run in new[] { r.Factored, r.Combined })
                    {
                        table.Row(run.Variant, F(run.Final.TrainAccuracy), F(run.Final.HeldOutAccuracy), F(run.Final.OvNuclearNorm, 2));
                    }
                    table.Write(stdout);

                    stdout.WriteLine(path);
                    return 0;
                }

            case "icl-regression":
                {
                    var o = new IclOptions(Seed: seed);
                    o = o with { Steps = steps ?? o.Steps, LearningRate = lr ?? o.LearningRate, Batch = batch ?? o.Batch, InitStd = init ?? o.InitStd };
                    var r = IclRegressionExperiment.Run(o, progress, ct);
                    string path = ExperimentReports.WriteIcl(r, dir);
                    if (json)
                    {
                        stdout.WriteLine(Json.Serialize(r));
                        return 0;
                    }

                    stdout.WriteLine($"in-context MSE: multi-head {F(r.MultiHeadMse, 4)}, single-head {F(r.SingleHeadMse, 4)}, ridge {F(r.RidgeMse, 4)}, predict-0 {F(r.ZeroMse, 4)}");
                    foreach (var h in r.MultiHeads)
                    {
                        stdout.WriteLine($"multi head {h.Head}: KQ diag {F(h.KqDiagonalMean)} (diag/off {F(h.KqDiagonality, 1)}), OV[y→y] {F(h.OvLastEntry)} (last-entry share {F(h.OvLastEntryShare)})");
                    }

                    stdout.WriteLine($"OV zero-sum |Σ|/Σ|·| = {F(r.OvZeroSum)}");
                    stdout.WriteLine(path);
                    return 0;
                }

            case "sink-redistribution":
                {
                    var r = RunSinkRedistribution(args, ct);
                    string path = SinkRedistributionExperiment.WriteReport(r, dir);
                    if (json)
                    {
                        stdout.WriteLine(Json.Serialize(r));
                        return 0;
                    }

                    foreach (var m in r.Models)
                    {
                        string heads = string.Join(",", m.Targets.SelectMany(t => t.Heads.Select(h => $"{t.Layer}.{h}")));
                        stdout.WriteLine($"{m.Model}: plain loss {F(m.PlainLoss, 4)}; {(m.Found ? "sinks" : "no sink layer at the thresholds; position 0")} in heads {heads}");
                        stdout.WriteLine("  " + string.Join("  ", m.Rows.Select(x => $"f={F(x.Fraction, 1)}: {(x.Change >= 0 ? "+" : "")}{F(x.Change, 4)}")));
                    }

                    stdout.WriteLine(path);
                    return 0;
                }

            default:
                throw new UsageException($"unknown experiment '{which}'; expected induction, ocr, icl-regression, list-recall, talking-heads, factual-recall, sink-redistribution or variants");
        }
    }
}
