using System.Diagnostics;
using Headwise.Compute;
using Headwise.Training;

namespace Headwise.Benchmarks;

/// <summary>One training benchmark: medians of forward (with loss), backward, and a whole optimizer step.</summary>
/// <remarks>The CPU-second fields are process CPU time per call (all threads): on a machine shared with other work they
/// show the cost of the code where wall-clock times show mostly the neighbours.</remarks>
public sealed record TrainingBenchResult(string Shape, int Batch, int SeqLen, int Threads, long Parameters,
    double ForwardSeconds, double BackwardSeconds, double StepSeconds, double ForwardCpuSeconds, double BackwardCpuSeconds, double StepCpuSeconds)
{
    /// <summary>Tokens per CPU-second of a full step, times the thread count: the throughput on otherwise idle cores, if scaling were perfect.</summary>
    public double TokensPerCpuSecondTimesThreads => Batch * SeqLen / StepCpuSeconds * Threads;

    /// <summary>Backward / forward in CPU time.</summary>
    public double BackwardToForwardCpu => BackwardCpuSeconds / ForwardCpuSeconds;

    /// <summary>Training throughput: B·T tokens per full step (forward + backward + AdamW).</summary>
    public double TokensPerSecond => Batch * SeqLen / StepSeconds;

    /// <summary>Cost of the backward as a multiple of the forward (llm.c's rule of thumb: about 2).</summary>
    public double BackwardToForward => BackwardSeconds / ForwardSeconds;
}

/// <summary>One attention variant's training speed (full steps) as a ratio to softmax's in the same run; Skipped: why the
/// variant does not run on the shape (then the speeds are NaN).</summary>
public sealed record VariantSpeedResult(string Variant, double StepSeconds, double TokensPerSecond, double Ratio, string? Skipped);

/// <summary>Training speed of a <see cref="TrainableTransformer"/> on random data.</summary>
public static class TrainingBenchmarks
{
    /// <summary>The bundled demo model's shape (models/demo, <see cref="DemoModelOptions"/>): GPT-2 family, 4 layers,
    /// d_model 128, 4 heads, sequence 128, its 4,097-token vocabulary, tied embeddings.</summary>
    public static TrainableConfig DemoConfig
    {
        get
        {
            var d = new DemoModelOptions();
            return new()
            {
                Architecture = TrainableArchitecture.Gpt2,
                VocabSize = DemoVocabSize,
                DModel = d.DModel,
                NLayers = d.Layers,
                NHeads = d.Heads,
                SeqLen = d.SeqLen,
                TiedEmbeddings = true,
            };
        }
    }

    /// <summary>models/demo/tokenizer.json: 256 bytes + 3,840 merges + &lt;|endoftext|&gt;.</summary>
    public const int DemoVocabSize = 4097;

    /// <summary>Sequences per step of the demo model's training run.</summary>
    public static int DemoBatch => new DemoModelOptions().Batch;

    /// <summary>Times forward, backward and full steps on <paramref name="threads"/> threads (median of <paramref name="reps"/> after a warm-up).</summary>
    public static TrainingBenchResult Run(TrainableConfig? config = null, int batch = 0, int threads = 2, int reps = 5, CancellationToken cancel = default)
    {
        config ??= DemoConfig;
        batch = batch > 0 ? batch : DemoBatch;
        int T = config.SeqLen;
        int saved = Kernels.MaxThreads;
        Kernels.MaxThreads = threads;
        try
        {
            var model = new TrainableTransformer(config, seed: 1);
            var rng = new Random(2);
            var tokens = Enumerable.Range(0, batch * T).Select(_ => rng.Next(config.VocabSize)).ToArray();
            var targets = Enumerable.Range(0, batch * T).Select(_ => rng.Next(config.VocabSize)).ToArray();
            var adam = new AdamW(model.ParameterCount);
            void Forward() => model.Forward(tokens, targets, batch, T);
            void Backward() => model.Backward();
            int step = 0;
            void Step()
            {
                model.ZeroGrad();
                model.Forward(tokens, targets, batch, T);
                model.Backward();
                AdamW.ClipGradients(model.Grads, AdamW.GlobalNorm(model.Grads), 1.0);
                adam.Step(model.Params, model.Grads, model.Parameters, 1e-4f, ++step);
            }
            var (forward, forwardCpu) = Measure(reps, null, Forward, cancel);
            var (backward, backwardCpu) = Measure(reps, Forward, Backward, cancel); // each timed backward follows an untimed forward
            var (full, fullCpu) = Measure(reps, null, Step, cancel);
            string shape = $"{config.Architecture} L{config.NLayers} C{config.DModel} H{config.NHeads} T{T} V{config.VocabSize}";
            return new TrainingBenchResult(shape, batch, T, threads, model.ParameterCount, forward, backward, full, forwardCpu, backwardCpu, fullCpu);
        }
        finally
        {
            Kernels.MaxThreads = saved;
        }
    }

    /// <summary>
    /// Training tokens/s of every attention variant (<see cref="AttentionVariants.All"/>) on <paramref name="config"/> (default
    /// the demo shape) with only the attention swapped: median full steps (forward + backward + AdamW) of
    /// <paramref name="reps"/> after a warm-up, each as a ratio to softmax's. A variant the shape does not allow (tensor above
    /// its sequence limit) is listed as skipped with the reason.
    /// </summary>
    public static IReadOnlyList<VariantSpeedResult> Variants(TrainableConfig? config = null, int batch = 0, int threads = 2, int reps = 3,
        CancellationToken cancel = default)
    {
        config ??= DemoConfig;
        batch = batch > 0 ? batch : DemoBatch;
        int T = config.SeqLen;
        int saved = Kernels.MaxThreads;
        Kernels.MaxThreads = threads;
        try
        {
            var rng = new Random(2);
            var tokens = Enumerable.Range(0, batch * T).Select(_ => rng.Next(config.VocabSize)).ToArray();
            var targets = Enumerable.Range(0, batch * T).Select(_ => rng.Next(config.VocabSize)).ToArray();
            var timed = new List<(string Variant, double Seconds, string? Skipped)>();
            foreach (var v in AttentionVariants.All)
            {
                var c = config with { AttentionVariant = v };
                try
                {
                    c.Validate();
                }
                catch (InvalidInputException e)
                {
                    timed.Add((v, double.NaN, e.Message));
                    continue;
                }
                var model = new TrainableTransformer(c, seed: 1);
                var adam = new AdamW(model.ParameterCount);
                int step = 0;
                void Step()
                {
                    model.ZeroGrad();
                    model.Forward(tokens, targets, batch, T);
                    model.Backward();
                    adam.Step(model.Params, model.Grads, model.Parameters, 1e-4f, ++step);
                }
                timed.Add((v, Measure(reps, null, Step, cancel).Wall, null));
            }
            double softmax = timed.First(t => t.Variant == AttentionVariants.Softmax).Seconds;
            return timed.Select(t => new VariantSpeedResult(t.Variant, t.Seconds, batch * T / t.Seconds, softmax / t.Seconds, t.Skipped)).ToArray();
        }
        finally
        {
            Kernels.MaxThreads = saved;
        }
    }

    // Median wall and CPU seconds of `run` over reps calls after a warm-up; `setup` runs untimed before each call.
    private static (double Wall, double Cpu) Measure(int reps, Action? setup, Action run, CancellationToken cancel)
    {
        setup?.Invoke();
        run();
        var wall = new double[reps];
        var cpu = new double[reps];
        var process = Process.GetCurrentProcess();
        for (int i = 0; i < reps; i++)
        {
            cancel.ThrowIfCancellationRequested();
            setup?.Invoke();
            process.Refresh();
            var c0 = process.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            run();
            wall[i] = sw.Elapsed.TotalSeconds;
            process.Refresh();
            cpu[i] = (process.TotalProcessorTime - c0).TotalSeconds;
        }
        Array.Sort(wall);
        Array.Sort(cpu);
        return (wall[reps / 2], cpu[reps / 2]);
    }
}
