using System.Globalization;
using Headwise.Analysis;
using Headwise.Benchmarks;
using Headwise.Evaluation;
using Headwise.Models;

namespace Headwise.Cli.Commands;

public sealed class CompareCommand : ICommand
{
    public string Name => "compare";
    public string Summary => "models side by side: NLL, ΔNLL, parameters, KV cache per token, prefill and decode speed";
    public string Usage => """
        headwise compare --model A --model B [--model C ...] (--text-file F | --text "...") [--window N] [--attention SPEC ...] [--json]
        """;

    public string Description => """
        The table the restructuring papers report: each model's mean NLL and perplexity on the same text (the same tokens,
        the same sliding window), its NLL minus the first model's, its parameters, the bytes its KV cache holds per token,
        and its prefill and decode speed measured in this run, also as a ratio to the first model's. Give the original
        first and its conversions after it. The text is tokenized once, by the first model's tokenizer; the models must
        share a vocabulary size.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Repeated("model", "M", "a model (repeat: two or more); Hugging Face directory, llama2.c .bin with --tokenizer, or Hub name"),
        CliOption.Text("tokenizer", "F", "tokenizer for the first model when it has none (llama2.c)"),
        CliOption.Integer("threads", "N", "worker threads for the kernels (default: all cores)"),
        CliOption.Text("prepack", "P", "auto|on|off for every model: weights packed once for the GEMM (see headwise info's help)"),
        CliOption.Text("text-file", "F", "the text to score (UTF-8; BOS prepended when the tokenizer adds one)"),
        CliOption.Text("text", "S", "the text, inline"),
        CliOption.Flag("no-bos", "do not prepend BOS"),
        CliOption.Integer("window", "N", "context window for every model (default: the smallest context among them)"),
        CliOption.Integer("stride", "S", "how far each window advances (default: window / 2)"),
        CliOption.Integer("prefill-tokens", "N", "prefill length to time (default: min(256, smallest context))"),
        CliOption.Integer("decode-context", "N", "decode speed after a prompt of N tokens (default: min(256, context) − decode tokens)"),
        CliOption.Integer("decode-tokens", "N", "decode steps to time (default 32)"),
        CliOption.Flag("no-speed", "skip the timings (quality, parameters and KV bytes only)"),
        .. CliOption.Noted(AttentionArgs.RepeatedOptions, "one spec for every model, or one per --model in order (repeat), e.g. the same model\ntwice with --attention dense --attention window:64,sinks:4; the spec joins the model's name"),
        CliOption.Flag("json", "print {\"tokens\", \"window\", \"stride\", \"models\": [{\"model\", \"family\", \"parameters\",\n\"kv_cache_bytes_per_token\", \"mean_nll\", \"perplexity\", \"delta_nll\", \"prefill_tokens_per_second\",\n\"prefill_ratio\", \"decode_tokens_per_second\", \"decode_ratio\"}]} (speeds null with --no-speed)"),
    ];

    public string Examples => """
        Speeds are medians of a few runs on this machine, with whatever else runs on it: compare the ratios, which are
        measured in the same run, rather than the absolute figures.

        Example:
          headwise compare --model models/demo --model models/demo --text-file docs/examples/texts/story.txt
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        var paths = args.GetAll("model");
        if (paths.Count < 2)
        {
            throw new UsageException($"give at least two models to compare (--model A --model B; got {paths.Count})");
        }
        string text = TextInput.Read(args);
        ModelArgs.ApplyThreads(args);
        bool? prepack = ModelArgs.Prepack(args);
        var loaded = new List<LoadedModel>();
        try
        {
            for (int i = 0; i < paths.Count; i++)
            {
                loaded.Add(ModelLoader.Load(ModelArgs.ResolveModel(paths[i]), i == 0 ? args.Get("tokenizer") : null));
                if (prepack is bool on)
                {
                    loaded[i].Model.Prepack = on;
                }
            }
            int[] ids = loaded[0].RequireTokenizer().Encode(text, addSpecial: !args.Flag("no-bos"));
            int context = loaded.Min(m => m.Config.MaxPositions);
            int window = args.GetInt("window", context, 2, context);
            int stride = args.GetInt("stride", Math.Max(1, window / 2), 1, window);
            var specs = args.GetAll("attention");
            if (specs.Count > 1 && specs.Count != paths.Count)
            {
                throw new UsageException($"give one --attention for every model or one per --model ({paths.Count}; got {specs.Count})");
            }
            var policies = specs.Count == 0 ? null : loaded.Select((m, i) => m.Model.SparseAttention = Sparse.AttentionSpec.Parse(specs[specs.Count == 1 ? 0 : i])).ToArray();
            var models = paths.Select((p, i) => (policies is null ? p : $"{p} [{policies[i].Spec}]", loaded[i].Model)).ToList();
            var bar = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected);
            var result = ModelComparison.Compute(models, ids, window, stride, bar.Stage("scoring tokens"), CliMain.Cancellation);
            // the density of the scoring forwards (the timings below run the policies too)
            var densities = policies?.Select(p => p.Density).ToArray();
            if (!args.Flag("no-speed"))
            {
                result = result with { Models = Time(models, result.Models, args, context, bar) };
            }
            if (json)
            {
                string line = Json.Serialize(new
                {
                    tokens = result.Tokens,
                    window = result.Window,
                    stride = result.Stride,
                    models = result.Models.Select(m => new
                    {
                        model = m.Name,
                        family = m.Family,
                        parameters = m.Parameters,
                        kv_cache_bytes_per_token = m.KvCacheBytesPerToken,
                        mean_nll = m.MeanNll,
                        perplexity = m.Perplexity,
                        delta_nll = m.DeltaNll,
                        prefill_tokens = m.Speed?.PrefillTokens,
                        prefill_tokens_per_second = m.Speed?.PrefillTokensPerSecond,
                        prefill_ratio = m.Speed?.PrefillRatio,
                        decode_context = m.Speed?.DecodeContext,
                        decode_tokens_per_second = m.Speed?.DecodeTokensPerSecond,
                        decode_ratio = m.Speed?.DecodeRatio,
                    }),
                });
                if (policies is not null)
                {
                    var node = System.Text.Json.Nodes.JsonNode.Parse(line)!.AsObject();
                    node["attention"] = System.Text.Json.JsonSerializer.SerializeToNode(
                        policies.Select((p, i) => new { spec = p.Spec, density = densities![i] }), Json.Options);
                    line = node.ToJsonString(Json.Options);
                }
                stdout.WriteLine(line);
                return 0;
            }
            Print(result, stdout);
            for (int i = 0; i < (policies?.Length ?? 0); i++)
            {
                stdout.WriteLine($"attention    model {i + 1}: {policies![i].Spec} (density {densities![i]:F4})");
            }
            return 0;
        }
        finally
        {
            foreach (var m in loaded)
            {
                m.Dispose();
            }
        }
    }

    /// <summary>Times every model with the benchmarks' timer, in rounds (each round times every model once, in order) so that
    /// a slow spell of the machine lands on all of them; each figure is the median over rounds.</summary>
    private static List<ComparedModel> Time(List<(string Name, TransformerModel Model)> models, IReadOnlyList<ComparedModel> rows, CliArgs args,
        int context, ProgressBar progress)
    {
        int decodeTokens = args.GetInt("decode-tokens", 32, 1, Math.Max(1, context - 1));
        int prefill = args.GetInt("prefill-tokens", Math.Min(256, context), 1, context);
        int decodeContext = args.GetInt("decode-context", Math.Max(1, Math.Min(256, context) - decodeTokens), 1, context - decodeTokens);
        const int rounds = 3;
        var pre = models.Select(_ => new List<double>()).ToArray();
        var dec = models.Select(_ => new List<double>()).ToArray();
        for (int r = 0; r < rounds; r++)
        {
            for (int i = 0; i < models.Count; i++)
            {
                CliMain.Cancellation.ThrowIfCancellationRequested();
                progress.Report(new AnalysisProgress($"timing ({rounds} rounds × {models.Count} models)", r * models.Count + i, rounds * models.Count));
                pre[i].Add(ModelBenchmarks.Prefill(models[i].Model, prefill, reps: 1, CliMain.Cancellation).TokensPerSecond);
                dec[i].Add(ModelBenchmarks.Decode(models[i].Model, decodeContext, decodeTokens, CliMain.Cancellation).TokensPerSecond);
            }
        }
        progress.Report(new AnalysisProgress($"timing ({rounds} rounds × {models.Count} models)", rounds * models.Count, rounds * models.Count));
        static double Median(List<double> x)
        {
            var s = x.Order().ToArray();
            return s[s.Length / 2];
        }
        double p0 = Median(pre[0]), d0 = Median(dec[0]);
        return rows.Select((row, i) => row with
        {
            Speed = new ComparedSpeed(prefill, Median(pre[i]), Median(pre[i]) / p0, decodeContext, Median(dec[i]), Median(dec[i]) / d0),
        }).ToList();
    }

    private static void Print(ModelComparison result, TextWriter stdout)
    {
        stdout.WriteLine($"text         {result.Tokens} tokens, window {result.Window} (stride {result.Stride}); ΔNLL against the first model");
        var first = result.Models[0].Speed;
        if (first is not null)
        {
            stdout.WriteLine($"speed        prefill of {first.PrefillTokens} tokens, decode after {first.DecodeContext}; ratios to the first model, measured in this run");
        }
        stdout.WriteLine();
        // the model and family columns left-aligned, numbers right-aligned
        var header = new List<string> { "model", "family", ">parameters", ">KV B/token", ">mean NLL", ">perplexity", ">ΔNLL" };
        if (first is not null)
        {
            header.AddRange([">prefill tok/s", ">×", ">decode tok/s", ">×"]);
        }
        var table = new CliTable([.. header]);
        foreach (var m in result.Models)
        {
            var row = new List<string>
            {
                m.Name, m.Family, m.Parameters.ToString("N0", CultureInfo.InvariantCulture), m.KvCacheBytesPerToken.ToString("N0", CultureInfo.InvariantCulture),
                m.MeanNll.ToString("F4", CultureInfo.InvariantCulture), m.Perplexity.ToString("F3", CultureInfo.InvariantCulture),
                m.DeltaNll.ToString("+0.0000;-0.0000;0", CultureInfo.InvariantCulture),
            };
            if (m.Speed is { } s)
            {
                row.AddRange([s.PrefillTokensPerSecond.ToString("F0", CultureInfo.InvariantCulture), s.PrefillRatio.ToString("F2", CultureInfo.InvariantCulture),
                    s.DecodeTokensPerSecond.ToString("F0", CultureInfo.InvariantCulture), s.DecodeRatio.ToString("F2", CultureInfo.InvariantCulture)]);
            }
            table.Row([.. row]);
        }
        table.Write(stdout);
    }
}
