using System.Diagnostics;
using System.Globalization;
using Headwise.Compute;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Benchmarks;

/// <summary>Against PyTorch eager (<see cref="PrefillComparisonTiming"/>, the other engine's figures under PyTorch's name).</summary>
public sealed record PyTorchTiming(int Tokens, int Threads, double HeadwiseSeconds, double TorchSeconds, double Ratio, double ForwardGFlop, double PeakGFlops)
    : PrefillComparisonTiming(Tokens, Threads, HeadwiseSeconds, TorchSeconds, Ratio, ForwardGFlop, PeakGFlops)
{
    public double TorchTokensPerSecond => OtherTokensPerSecond;
    public double TorchOfPeak => OtherOfPeak;
}

/// <param name="TorchVersion">torch.__version__ of the interpreter that ran the script.</param>
/// <param name="Blas">The BLAS the PyTorch process mapped (openblas, mkl, reference, unknown): "reference" means Debian's
/// torch without libopenblas0-pthread, tens of times slower than it would be, and the ratios then flatter us.</param>
/// <param name="MaxNllDiff">Largest |Δ mean next-token NLL| over every checked token count (must be ≤ 1e-5).</param>
public sealed record PyTorchComparisonResult(string Python, string TorchVersion, string Blas, double MaxNllDiff, double Nll, IReadOnlyList<PyTorchTiming> Timings);

/// <summary>
/// Prefill against PyTorch eager on the same weights: the model saved as a Hugging Face checkpoint (F32), read by
/// <c>dev/bench/torch_prefill.py</c>, which runs dev/reference's <c>gpt2_forward</c> — Hugging Face's GPT-2 op by op, the
/// reference of every GPT-2 golden — in a Python process kept alive between rounds. Before timing, each token count's mean
/// next-token NLL must agree with ours to 1e-5. Then both engines alternate in rounds, each forward after an idle pause
/// (PyTorch's OpenMP threads spin after a parallel region, as ONNX Runtime's do); the script times its forward alone
/// (perf_counter around it), so the pipe's latency is not PyTorch's.
/// </summary>
public static class PyTorchComparison
{
    /// <summary>The NLL agreement required before timing (mean next-token NLL in nats).</summary>
    public const double NllTolerance = 1e-5;

    /// <summary>Milliseconds of idle before each timed forward: longer than ONNX Runtime's pause, as GNU OpenMP's
    /// workers spin for up to ~300,000 iterations before they sleep.</summary>
    public const int IdleBeforeRunMs = 200;

    /// <summary>The interpreter that can import torch: <c>HEADWISE_PYTHON</c>, else /usr/bin/python3 (Debian's
    /// python3-torch), else python3 on PATH; null with the reason when none can.</summary>
    public static string? FindPython(out string reason)
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("HEADWISE_PYTHON") is { Length: > 0 } env) candidates.Add(env);
        candidates.Add("/usr/bin/python3");
        candidates.Add("python3");
        foreach (string python in candidates)
        {
            try
            {
                using var p = Process.Start(new ProcessStartInfo(python, ["-c", "import torch, numpy; print(torch.__version__)"])
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    UseShellExecute = false,
                });
                if (p is null) continue;
                p.StandardOutput.ReadToEnd();
                p.StandardError.ReadToEnd();
                if (!p.WaitForExit(60_000)) { p.Kill(); continue; }
                if (p.ExitCode == 0)
                {
                    reason = "";
                    return python;
                }
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not installed: try the next
            }
        }
        reason = "no Python with torch and numpy (tried " + string.Join(", ", candidates) + "; install with dev/reference/install.sh)";
        return null;
    }

    /// <summary>The script: dev/bench/torch_prefill.py above the current directory or the binaries.</summary>
    public static string? FindScript()
    {
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string path = Path.Combine(dir.FullName, "dev", "bench", "torch_prefill.py");
                if (File.Exists(path)) return path;
            }
        }
        return null;
    }

    /// <summary>Checks PyTorch against <paramref name="model"/> (a GPT-2) at every token count (throws when the NLLs differ
    /// by more than <see cref="NllTolerance"/>), then times prefill of each token count with each thread count.</summary>
    public static PyTorchComparisonResult Compare(TransformerModel model, string python, string script, int[] tokenCounts,
        int[] threadCounts, int rounds = 3, CancellationToken cancel = default)
    {
        if (model.Config.Family != ArchitectureFamily.Gpt2)
        {
            throw new ArgumentException($"the PyTorch comparison runs GPT-2 models only; this one is {model.Config.Family}");
        }
        string dir = Path.Combine(Path.GetTempPath(), "headwise-torch-" + Guid.NewGuid().ToString("N")[..8]);
        int savedThreads = Kernels.MaxThreads;
        // one PyTorch process per thread count: OpenBLAS and OpenMP read their thread counts from the environment once
        var processes = new Dictionary<int, (Process Process, System.Text.StringBuilder Stderr)>();
        string blas = "unknown", version = "unknown";
        try
        {
            model.ToCanonical().SaveHf(dir, TensorDType.F32);
            string ReadLine((Process Process, System.Text.StringBuilder Stderr) torch)
            {
                string? line = torch.Process.StandardOutput.ReadLine();
                if (line is null)
                {
                    torch.Process.WaitForExit(5_000);
                    lock (torch.Stderr) throw new InvalidOperationException($"{script} stopped: {torch.Stderr.ToString().Trim()}");
                }
                return line;
            }
            (Process Process, System.Text.StringBuilder Stderr) Start(int threads)
            {
                var info = new ProcessStartInfo(python, [script, dir])
                {
                    RedirectStandardInput = true,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    UseShellExecute = false,
                };
                foreach (string variable in new[] { "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS" })
                {
                    info.Environment[variable] = threads.ToString(CultureInfo.InvariantCulture);
                }
                var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {python} {script}");
                var stderr = new System.Text.StringBuilder();
                process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
                process.BeginErrorReadLine();
                (Process Process, System.Text.StringBuilder Stderr) started = (process, stderr);
                processes[threads] = started;
                string ready = ReadLine(started);
                if (!ready.StartsWith("ready", StringComparison.Ordinal)) throw new InvalidOperationException($"{script} did not start as expected: {ready}");
                var words = ready.Split(' ', StringSplitOptions.RemoveEmptyEntries); // ready BLAS VERSION
                blas = words.Length > 1 ? words[1] : "unknown";
                version = words.Length > 2 ? words[2] : "unknown";
                return started;
            }
            (double Seconds, double Nll) RunTorch(int threads, int[] tokens)
            {
                var torch = processes.TryGetValue(threads, out var running) ? running : Start(threads);
                torch.Process.StandardInput.WriteLine($"run {threads} {string.Join(',', tokens)}");
                torch.Process.StandardInput.Flush();
                var parts = ReadLine(torch).Split(' ');
                return (double.Parse(parts[0], CultureInfo.InvariantCulture), double.Parse(parts[1], CultureInfo.InvariantCulture));
            }

            int V = model.Config.VocabSize;
            var rng = new Random(17);
            var inputs = new Dictionary<int, int[]>();
            var logits = new Dictionary<int, float[]>();
            double maxNllDiff = 0, nll = 0;
            foreach (int T in tokenCounts)
            {
                cancel.ThrowIfCancellationRequested();
                var tokens = Enumerable.Range(0, T).Select(_ => rng.Next(V)).ToArray();
                inputs[T] = tokens;
                logits[T] = model.Forward(ModelInput.Single(tokens));
                nll = OnnxComparison.MeanNll(logits[T], tokens, V);
                double diff = Math.Abs(nll - RunTorch(threadCounts[^1], tokens).Nll);
                maxNllDiff = Math.Max(maxNllDiff, diff);
                if (!(diff <= NllTolerance))
                {
                    throw new InvalidOperationException($"PyTorch disagrees with Headwise at {T} tokens: mean NLL differs by {diff:E2} " +
                        $"(tolerance {NllTolerance:E0}): the script does not compute our forward; nothing was timed");
                }
            }

            var timings = new List<PyTorchTiming>();
            foreach (int threads in threadCounts)
            {
                Kernels.MaxThreads = threads;
                double peak = PrefillComparisonTiming.PeakOf(threads, cancel);
                foreach (int T in tokenCounts)
                {
                    var input = ModelInput.Single(inputs[T]);
                    var output = logits[T];
                    var (h, ratio) = OnnxComparison.Alternate(() => model.Forward(input, null, output),
                        () => RunTorch(threads, inputs[T]).Seconds, rounds, IdleBeforeRunMs, cancel);
                    timings.Add(new PyTorchTiming(T, threads, h, h * ratio, ratio, ModelBenchmarks.ForwardFlops(model.Config, T) / 1e9, peak));
                }
            }
            foreach (var (process, _) in processes.Values)
            {
                process.StandardInput.WriteLine("quit");
                process.StandardInput.Flush();
                process.WaitForExit(10_000);
            }
            return new PyTorchComparisonResult(python, version, blas, maxNllDiff, nll, timings);
        }
        finally
        {
            Kernels.MaxThreads = savedThreads;
            foreach (var (process, _) in processes.Values)
            {
                if (!process.HasExited) process.Kill();
                process.Dispose();
            }
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
