using System.Diagnostics;
using System.Globalization;
using Headwise.Models;
using Headwise.Restructure;
using Headwise.Training;

namespace Headwise.Cli.Commands;

public sealed class HealCommand : ICommand
{
    public string Name => "heal";
    public string Summary => "distil a converted model (convert gqa / prune / mla) back towards its original: KL to the teacher";
    public string Usage => """
        headwise heal --model CONVERTED --teacher ORIGINAL --text-file F --steps N [--lr X] [--seq-len T] [--batch B] [--seed S] [--out DIR] [--dtype f32|f16|bf16] [--json]
        """;

    public string Description => """
        Healing by distillation: the converted model (the output of headwise convert gqa, prune or mla) is imported into
        the trainer and every one of its parameters is trained with AdamW (no weight decay, gradients clipped at norm 1) to
        minimise KL(teacher ‖ student) of the next-token distributions on random windows of the text; the teacher (the
        original model, run by the engine) gives its distributions on the same windows, at temperature 1. Grouped-query
        attention stays grouped, and pruned heads (all-zero W_O blocks) stay zero. The last tenth of the text (from a line
        start near the cut) is held out: before and after, it reports the mean NLL there of ORIGINAL, CONVERTED and HEALED —
        what headwise eval --text-file reports on that part — and the KL of CONVERTED and HEALED to ORIGINAL. Progress (step,
        batch KL, tokens/s) goes to stderr. Both models read the text with CONVERTED's tokenizer (ORIGINAL's when it has
        none) and must have the same vocabulary. The trainer holds GPT-2 and Llama models (llama2.c included) and deepseek_v3
        models with multi-head latent attention (what convert mla writes, or a dense stock DeepSeek-V3): those train their
        latent projections (W_DKV, W_UK/W_UV, the shared rotary key, the query) and --out writes the same layout back;
        other families are refused, naming what does not fit.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("teacher", "M", "the original model (directory, llama2.c .bin or Hub name; --tokenizer applies to it too)"),
        CliOption.Text("text-file", "F", "the text to distil on (UTF-8); its last tenth is held out"),
        CliOption.Integer("steps", "N", "optimizer steps (at least 1)"),
        CliOption.Number("lr", "X", "learning rate (default 3e-4, constant)"),
        CliOption.Integer("seq-len", "T", "tokens per window (default 64, or fewer when the text or the context is shorter)"),
        CliOption.Integer("batch", "B", "windows per step (default 4)"),
        CliOption.Integer("seed", "S", "seeds the windows' offsets (default 1)"),
        CliOption.Text("out", "DIR", "write the healed model there: a Hugging Face checkpoint of the same family, tokenizer files\ncopied (must not exist or be empty); without it nothing is written"),
        CliOption.Text("dtype", "D", "stored precision of --out: f32 (default), f16 or bf16"),
        CliOption.Flag("json", "print {\"steps\", \"seq_len\", \"batch\", \"lr\", \"seconds\", \"train_tokens\", \"held_out\": {\"first_char\",\n\"tokens\"}, \"nll\": {\"original\", \"converted\", \"healed\"}, \"kl\": {\"converted\", \"healed\"},\n\"zeroed_heads\": [\"L.H\"], \"kl_per_step\": [...], \"out\", \"files\"}"),
    ];

    public string Examples => """
        Example:
          headwise heal --model /tmp/stories-gqa2 --teacher ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --text-file docs/examples/texts/story.txt --steps 20
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        string teacherPath = args.Require("teacher", "the original model the converted one is distilled towards");
        string textFile = args.Require("text-file", "the text to distil on");
        if (!File.Exists(textFile)) throw new UsageException($"--text-file {textFile}: file not found");
        if (!args.Has("steps")) throw new UsageException("missing --steps N (optimizer steps, at least 1)");
        int steps = args.GetInt("steps", 0, 1);
        float lr = (float)args.GetDouble("lr", 3e-4, double.Epsilon, 10);
        int batch = args.GetInt("batch", 4, 1, 4096);
        int seqLen = args.GetInt("seq-len", 0, 2);
        ulong seed = (ulong)args.GetInt("seed", 1, 0);
        string? outDir = args.Get("out");
        var dtype = CheckpointOutput.DType(args);
        if (outDir is not null) CheckpointOutput.RequireNew(outDir);
        string text = File.ReadAllText(textFile);

        using var loaded = ModelArgs.Load(args);
        string? tokenizerPath = args.Get("tokenizer");
        string resolvedTeacher;
        try
        {
            resolvedTeacher = ModelArgs.ResolveModel(teacherPath);
        }
        catch (Hub.HubException e)
        {
            throw new UsageException($"--teacher {teacherPath}: {e.Message}");
        }
        using var teacher = ModelLoader.Load(resolvedTeacher, tokenizerPath);
        var sc = loaded.Config;
        if (teacher.Config.VocabSize != sc.VocabSize)
        {
            throw new UsageException($"--teacher {teacherPath}: its vocabulary ({teacher.Config.VocabSize} tokens) differs from --model's ({sc.VocabSize}); distillation needs the same tokens");
        }
        if ((sc.Mla is not null ? TrainableTransformer.MlaImportBlocker(sc) : TrainableTransformer.ImportBlocker(sc)) is string why) throw new UsageException($"--model {loaded.Path}: cannot be trained: {why}");
        var tokenizer = loaded.Tokenizer ?? teacher.Tokenizer ?? loaded.RequireTokenizer();

        int split = Healing.HeldOutStart(text);
        int[] train = tokenizer.Encode(text[..split], addSpecial: true);
        int[] heldOut = tokenizer.Encode(text[split..], addSpecial: true);
        if (heldOut.Length < 2) throw new UsageException($"--text-file {textFile}: the held-out tail has {heldOut.Length} token(s); give a longer text");
        var options = new HealingOptions { Steps = steps, LearningRate = lr, BatchSize = batch, SeqLen = seqLen, Seed = seed };
        int T = options.WindowFor(train.Length, sc.MaxPositions);
        if (T < 2 || T > sc.MaxPositions || T > train.Length)
        {
            throw new UsageException($"--seq-len {T}: must be in [2, {Math.Min(sc.MaxPositions, train.Length)}] (the context, and the {train.Length} training tokens of the text)");
        }

        // before: the original, the converted, and the converted's KL to the original on the held-out tail
        var original = Healing.Score(teacher.Model, teacher.Model, heldOut, CliMain.Cancellation);
        var converted = Healing.Score(loaded.Model, teacher.Model, heldOut, CliMain.Cancellation);
        // a model pruned per layer trains in its source's shape, the removed heads as zero heads that stay zero, and is
        // written pruned again
        var student = sc.LayerHeads is null ? TrainableTransformer.FromModel(loaded.Model)
            : TrainableTransformer.FromCanonical(HeadPruning.Expanded(loaded.Model.ToCanonical()));
        var zeroed = Healing.ZeroedHeads(student);
        string ZeroedList() => string.Join(", ", zeroed.Select(h => $"{h.Layer}.{h.Head}"));
        string shape = sc.Mla is { } mla ? $"latent rank {mla.KvLoraRank} + rotary {mla.QkRopeHeadDim}" : $"{sc.NKvHeads} kv heads";
        stderr.WriteLine($"heal: {sc.ModelType} ({sc.NHeads} heads, {shape}, {student.ParameterCount:N0} parameters) towards {teacherPath}; " +
            $"{train.Length} training tokens, held out from character {split}: {heldOut.Length} tokens" + (zeroed.Length > 0 ? $"; zeroed heads kept zero: {ZeroedList()}" : ""));
        // a live row on a terminal's stderr; otherwise a line at the first step, every 5% and the last
        int every = Math.Max(1, steps / 20);
        var clock = Stopwatch.StartNew();
        double[] kls;
        using (var live = LiveStatus.Start(stderr))
        {
            var progress = new SyncProgress<HealingProgress>(p =>
            {
                string line = FormattableString.Invariant($"step {p.Step,5}/{p.Steps}  kl {p.Kl:F5}  {p.TokensPerSecond:F0} tokens/s");
                if (live is not null)
                {
                    live.Update(line, p.Step, p.Steps);
                }
                else if (p.Step == 1 || p.Step % every == 0 || p.Step == p.Steps)
                {
                    stderr.WriteLine(line);
                }
            });
            kls = Healing.Heal(student, teacher.Model, train, options, progress, CliMain.Cancellation);
        }
        double seconds = clock.Elapsed.TotalSeconds;

        // the healed model as the engine runs it, and as --out writes it: the same layout as CONVERTED
        var latent = sc.Mla is null ? null : student.ToMlaCheckpoint(sc.BosTokenId, sc.EosTokenId);
        var weights = latent is null ? student.ToCanonical() : null;
        if (weights is not null) weights = weights with { Config = weights.Config with { BosTokenId = sc.BosTokenId, EosTokenId = sc.EosTokenId } };
        if (weights is not null && sc.LayerHeads is { } layerHeads) weights = HeadPruning.Repruned(weights, layerHeads);
        using var healedModel = latent is not null ? latent.ToModel("healed") : TransformerModel.Create(weights!, "healed");
        var healed = Healing.Score(healedModel, teacher.Model, heldOut, CliMain.Cancellation);
        List<string> files = [];
        if (outDir is not null)
        {
            files = latent is not null
                ? CheckpointOutput.Write(dir => latent.Save(dir, dtype), loaded, tokenizerPath, outDir, stderr, "heal")
                : CheckpointOutput.Write(weights!, loaded, tokenizerPath, outDir, dtype, stderr, "heal");
        }
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                steps,
                seq_len = T,
                batch,
                lr,
                seconds,
                train_tokens = train.Length,
                held_out = new { first_char = split, tokens = heldOut.Length },
                nll = new { original = original.Nll, converted = converted.Nll, healed = healed.Nll },
                kl = new { converted = converted.Kl, healed = healed.Kl },
                zeroed_heads = zeroed.Select(h => $"{h.Layer}.{h.Head}"),
                kl_per_step = kls,
                @out = outDir,
                files,
            }));
            return 0;
        }
        string F(double x) => x.ToString("F4", CultureInfo.InvariantCulture);
        stdout.WriteLine($"held out     characters {split}.. of {textFile} ({heldOut.Length} tokens, {heldOut.Length - 1} predicted; headwise eval --text-file scores them the same)");
        stdout.WriteLine($"nll          original {F(original.Nll)}  converted {F(converted.Nll)}  healed {F(healed.Nll)} nats/token");
        stdout.WriteLine($"kl           converted {converted.Kl:G4} → healed {healed.Kl:G4} nats/token (to the original)");
        stdout.WriteLine($"trained      {steps} steps × {batch} × {T} tokens in {seconds:F1} s (lr {lr.ToString(CultureInfo.InvariantCulture)})");
        if (zeroed.Length > 0) stdout.WriteLine($"kept zero    {zeroed.Length} pruned head(s): {ZeroedList()}");
        if (outDir is not null) stdout.WriteLine($"wrote        {outDir}: {string.Join(", ", files)}");
        return 0;
    }

    // reports on the calling thread, in order (Progress<T> would post to the thread pool)
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
