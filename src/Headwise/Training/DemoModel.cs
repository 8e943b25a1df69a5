using Headwise.Tokenizers;

namespace Headwise.Training;

/// <summary>Settings of the bundled demo model (models/demo): a small GPT-2 trained on the State of the Union text.</summary>
public sealed record DemoModelOptions(int DModel = 128, int Layers = 4, int Heads = 4, int SeqLen = 128, int Steps = 1500,
    int Batch = 16, float LearningRate = 2e-3f, int WarmupSteps = 100, ulong Seed = 0, double HeldOutFraction = 0.05, int EvalEvery = 250,
    int CheckpointEvery = 250, bool Resume = false, double RepeatFraction = 0, double RandomRepeatFraction = 0,
    double PairRecallFraction = 0, string? InitDir = null, LrSchedule Schedule = LrSchedule.Cosine, IReadOnlyList<string>? Frozen = null);

/// <summary>What <see cref="DemoModel.Train"/> did.</summary>
public sealed record DemoModelResult(int Tokens, int Parameters, int Steps, float? HeldOutLoss, double Seconds, string ModelDir);

/// <summary>
/// Trains the demo model: tokenizes the text with the given tokenizer.json (byte-level BPE from <see cref="BpeTrainer"/>),
/// trains a GPT-2 (LayerNorm, GELU MLP, learned positions, tied embeddings) with the <see cref="Trainer"/>, holds out the
/// last <see cref="DemoModelOptions.HeldOutFraction"/> of the tokens, and exports a Hugging Face checkpoint (config.json,
/// model.safetensors, tokenizer.json) into the model directory.
/// </summary>
public static class DemoModel
{
    public static DemoModelResult Train(string textFile, string tokenizerJson, string modelDir, string runDir, DemoModelOptions o,
        IProgress<TrainingProgress>? progress = null, CancellationToken ct = default)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        if (!File.Exists(textFile))
        {
            throw new InvalidInputException($"--text-file: {textFile} not found (run dev/demo/get-data.sh first).");
        }

        var tok = TokenizerLoader.Load(tokenizerJson);
        int[] ids = tok.Encode(File.ReadAllText(textFile), addSpecial: false);
        // GPT-2 configs default BOS/EOS to 50256; this vocabulary's <|endoftext|> is its last id.
        int eot = tok.VocabSize - 1;
        var config = new TrainableConfig
        {
            Architecture = TrainableArchitecture.Gpt2,
            VocabSize = tok.VocabSize,
            DModel = o.DModel,
            NLayers = o.Layers,
            NHeads = o.Heads,
            SeqLen = o.SeqLen,
            TiedEmbeddings = true,
        };
        var options = new TrainerOptions
        {
            Steps = o.Steps,
            BatchSize = o.Batch,
            LearningRate = o.LearningRate,
            // cosine warms up for at most a tenth of the run; a constant schedule always for WarmupSteps, so that a run of
            // N steps is bitwise the first N steps of any longer one (its checkpoints are the shorter runs)
            WarmupSteps = o.Schedule == LrSchedule.Constant ? Math.Min(o.WarmupSteps, o.Steps) : Math.Min(o.WarmupSteps, o.Steps / 10),
            Schedule = o.Schedule,
            Seed = o.Seed,
            HeldOutFraction = o.HeldOutFraction,
            EvalEvery = o.EvalEvery,
            EvalBatches = 8,
            CheckpointEvery = o.CheckpointEvery,
            RepeatFraction = o.RepeatFraction,
            RandomRepeatFraction = o.RandomRepeatFraction,
            PairRecallFraction = o.PairRecallFraction,
            BosTokenId = o.RandomRepeatFraction > 0 || o.PairRecallFraction > 0 ? eot : null,
            Frozen = o.Frozen ?? [],
        };
        // A long run is resumable: --resume continues from runDir/checkpoint (same data, same schedule) exactly.
        var trainer = o.Resume
            ? Trainer.Resume(runDir, ids, runDir, o.Steps, tokenizerFile: tokenizerJson)
            : new Trainer(o.InitDir is null ? new TrainableTransformer(config, o.Seed) : LoadInit(o.InitDir, tok.VocabSize), options, ids, runDir, tokenizerJson);
        var model = trainer.Model;
        var result = trainer.Train(progress, ct);
        // a cancelled run keeps its checkpoint in runDir (for Resume) but exports no half-trained model
        ct.ThrowIfCancellationRequested();
        Directory.CreateDirectory(modelDir);
        model.SaveHf(modelDir);
        string dest = Path.Combine(modelDir, "tokenizer.json");
        if (!string.Equals(Path.GetFullPath(tokenizerJson), Path.GetFullPath(dest), StringComparison.Ordinal))
        {
            File.Copy(tokenizerJson, dest, overwrite: true);
        }

        string configPath = Path.Combine(modelDir, "config.json");
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        node["bos_token_id"] = eot;
        node["eos_token_id"] = eot;
        Reports.AtomicFile.WriteAllText(configPath, node.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        return new DemoModelResult(ids.Length, model.ParameterCount, result.LastStep, result.EvalLoss, sw.Elapsed.TotalSeconds, modelDir);
    }

    // --init: the weights of a model directory (an earlier demo model) as the starting point; the optimizer starts fresh
    private static TrainableTransformer LoadInit(string dir, int vocabSize)
    {
        if (!Directory.Exists(dir))
        {
            throw new InvalidInputException($"--init: {dir} is not a model directory");
        }
        using var loaded = ModelLoader.Load(dir);
        if (loaded.Config.VocabSize != vocabSize)
        {
            throw new InvalidInputException($"--init {dir}: its vocabulary ({loaded.Config.VocabSize} tokens) differs from the tokenizer's ({vocabSize})");
        }
        return TrainableTransformer.FromCanonical(loaded.Model.ToCanonical());
    }
}
