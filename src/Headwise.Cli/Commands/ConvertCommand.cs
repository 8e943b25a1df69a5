using System.Globalization;
using Headwise.Restructure;

namespace Headwise.Cli.Commands;

public sealed class ConvertCommand : ICommand
{
    public string Name => "convert";
    public string Summary => "restructure attention into a new checkpoint: gqa (key/value heads fused into fewer), prune (heads removed or zeroed), mla (latent attention), share-attention (patterns shared between layers)";
    public IReadOnlyList<CliArgument> Arguments { get; } = [new("KIND", "gqa | prune | mla | share-attention: the conversion (see above)")];
    public string Usage => """
        headwise convert gqa --model M --kv-heads G [--method mean|fuse] [--calibration FILE] --out DIR [--dtype f32|f16|bf16] [--json]
        headwise convert prune --model M (--heads L.H,... | --by-importance N) [--format headwise|hf] [--calibration FILE] --out DIR [--dtype ...] [--json]
        headwise convert mla --model M (--kv-fraction F | --kv-rank R --rope-dim D) [--format headwise|deepseek_v3] [--calibration FILE] --out DIR [--dtype ...] [--json]
        headwise convert share-attention --model M (--groups 4-5,6-7 | --suggest [--min-similarity S]) [--calibration FILE] --out DIR [--dtype ...] [--json]
        """;

    public string Description => BaseDescription + Environment.NewLine + Environment.NewLine + ShareAttentionArgs.Help.TrimEnd();

    private const string BaseDescription = """
        gqa: grouped-query attention by head fusion [DHA; GQA up-training]. The key/value heads of every layer are grouped by
        the similarity of their keys and values on the calibration text (the lowest unassigned head with the NKV/G − 1 heads
        most similar to it), and each group becomes one key/value head:
          mean  the average of the group's W_K and W_V (and biases): GQA's mean-pooling initialisation;
          fuse  (default) the linear fusion that reconstructs the group's keys and values best on the calibration text, its
                per-member maps folded into the members' W_Q and W_O: RoPE stays exact (a scaled rotation per frequency
                pair); it never reconstructs worse than mean.
        Query heads are reordered so that each group's are contiguous (the new head order is printed). G equal to the
        model's key/value heads is lossless. The output is a Hugging Face checkpoint of the same family (llama, mistral,
        qwen2; a llama2.c model is written as llama) with num_key_value_heads = G; GPT-2 and GPT-NeoX have no grouped-query
        form and are refused. Per layer it prints the reconstruction error Σ‖K − K̂‖²/Σ‖K‖² of keys and of values on the
        calibration text. Then `headwise compare` with the original first and DIR after it says what the conversion costs.

        prune: the chosen heads are pruned; the model computes what it computes with them zero-ablated.
          --format headwise  (default) Headwise's own layout: the family's checkpoint with per-layer head counts (a
                             headwise_heads block in config.json): the heads' q/k/v and output rows are removed — fewer
                             parameters, FLOPs and KV cache bytes. Grouped-query attention keeps whole groups: a kv head
                             stays while any of its query heads does, and its pruned query heads stay zeroed (W_O = 0); a
                             layer whose every head is pruned keeps one zeroed group (its attention writes nothing).
                             Loads in Headwise only.
          --format hf        a Hugging Face checkpoint of the same family with the heads zeroed (W_O of each set to 0): one
                             head count for all layers, so the same parameters, FLOPs and cache.
        --by-importance N prunes the N heads whose zero ablation raises the loss on the calibration text least (headwise
        importance --method zero).

        mla: grouped-query attention → multi-head latent attention [TransMLA]. Per token and layer the cache holds a latent
        of R floats and one rotary key of D floats shared by all heads, instead of 2·NKV·HD keys and values. The keys are
        mixed across kv heads per RoPE frequency pair (an orthogonal mix, exact, folded into W_Q) so that D dims carry the
        most key energy; those keep RoPE, the other key dims lose it (the approximation), and they are compressed with the
        values to rank R by PCA on the calibration text. --kv-fraction F picks D = the largest even ≤ F·NKV·rotary dims and
        R = ⌊F·2·NKV·HD⌋ − D; 1 is lossless. It prints per layer the reconstruction errors and the share of key energy
        that lost RoPE, and the NLL of the original and the converted model on the calibration text.
          --format headwise     (default) a deepseek_v3 directory with a headwise_mla block (the source's score scale, no
                                kv_a_layernorm, q bias, the RoPE frequency of each rotary pair): exact, loads in Headwise
          --format deepseek_v3  a stock Hugging Face DeepSeek-V3 directory (DeepseekV3ForCausalLM): D = one head's rotary
                                dims, the scale folded into the queries, kv_a_layernorm's weight set to the latent's RMS on the
                                text (an approximation whose NLL cost it prints); no q bias, no sliding window
        Sources: the Llama family (llama, mistral, qwen2, llama2.c), GPT-NeoX (the dims partial rotary leaves unrotated are
        compressed with the non-rotary keys) and GPT-2 (learned positions: no rotary key, D = 0). GPT-2 and GPT-NeoX convert
        to --format headwise only: its headwise_mla block keeps their LayerNorm, GELU MLP, biases, learned positions and
        parallel residual, which stock DeepSeek-V3 has no place for.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("heads", "L.H,..", "prune: the heads to prune, e.g. 1.0,2.3"),
        CliOption.Integer("by-importance", "N", "prune: the N least important heads on the calibration text"),
        CliOption.Integer("kv-heads", "G", "key/value heads per layer after the conversion; must divide the model's"),
        CliOption.Text("method", "M", "mean or fuse (default fuse)"),
        CliOption.Number("kv-fraction", "F", "mla: the share of the original KV cache to keep, more than 0 and at most 1"),
        CliOption.Integer("kv-rank", "R", "mla: the latent's width (with --rope-dim)"),
        CliOption.Integer("rope-dim", "D", "mla: the shared rotary key's width, even (with --kv-rank)"),
        CliOption.Text("format", "F", "mla: headwise (default) or deepseek_v3; prune: headwise (default, heads removed) or hf (heads zeroed)"),
        .. ShareAttentionArgs.Declared,
        CliOption.Text("calibration", "F", "text to calibrate on (UTF-8; default: a built-in text of a few hundred tokens); gqa cuts it to\nthe context, prune slides the context window over it"),
        CliOption.Text("out", "DIR", "directory to write; must not exist or be empty"),
        CliOption.Text("dtype", "D", "stored precision: f32 (default), f16 or bf16"),
        CliOption.Flag("json", "print {\"out\", \"kind\", \"method\", \"kv_heads\", \"layers\": [{\"layer\", \"groups\": [[kv heads]],\n\"key_error\", \"value_error\"}], \"query_heads\": [[old head of each new head] per layer], \"files\"};\nprune: {\"out\", \"kind\", \"format\", \"heads\": [\"L.H\"], \"zeroed\", \"kept_zeroed\", \"query_heads\", \"kv_heads\",\n\"parameters\": {\"before\", \"after\"}, \"kv_cache_bytes_per_token\": {\"before\", \"after\"}, \"files\"}"),
    ];

    public string Examples => """
        Example:
          headwise convert gqa --model ../shared/models/stories260K/stories260K.bin --tokenizer ../shared/models/stories260K/tok512.bin --kv-heads 2 --out /tmp/stories-gqa2
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string kind = args.Positional.Count == 1 ? args.Positional[0]
            : throw new UsageException("say what to convert: headwise convert gqa --model M --kv-heads G --out DIR");
        if (kind == "prune")
        {
            return Prune(args, stdout, stderr);
        }
        if (kind == "mla")
        {
            return Mla(args, stdout, stderr);
        }
        if (kind == "share-attention")
        {
            string? calibration = CalibrationFile(args);
            return ShareAttentionArgs.Run(args, stdout, stderr, loaded => Calibration(loaded, calibration));
        }
        foreach (string other in ShareAttentionArgs.Options.Concat(ShareAttentionArgs.Flags).Where(args.Has))
        {
            throw new UsageException($"--{other} belongs to convert share-attention");
        }
        if (kind != "gqa")
        {
            throw new UsageException($"convert {kind}: unknown kind; the kinds: gqa, prune, mla, share-attention");
        }
        if (args.Has("heads") || args.Has("by-importance"))
        {
            throw new UsageException("--heads and --by-importance belong to convert prune");
        }
        bool json = args.Flag("json");
        string outDir = args.Require("out", "the directory to write");
        int kvHeads = args.GetInt("kv-heads", 0, 1);
        if (!args.Has("kv-heads"))
        {
            throw new UsageException("missing --kv-heads G (the key/value heads per layer after the conversion)");
        }
        var method = (args.Get("method") ?? "fuse") switch
        {
            "mean" => GqaMethod.Mean,
            "fuse" => GqaMethod.Fuse,
            var m => throw new UsageException($"--method {m}: expected mean or fuse"),
        };
        var dtype = CheckpointOutput.DType(args);
        CheckpointOutput.RequireNew(outDir);
        string? calibrationFile = CalibrationFile(args);
        using var loaded = ModelArgs.Load(args);
        int[] ids = Calibration(loaded, calibrationFile);
        var progress = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected).Stage("fusing layers");
        var r = GqaConversion.Convert(loaded.Model, kvHeads, method, ids, progress, CliMain.Cancellation);
        var files = CheckpointOutput.Write(r.Weights, loaded, args.Get("tokenizer"), outDir, dtype, stderr, "convert");
        int used = Math.Min(ids.Length, loaded.Config.MaxPositions);
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                @out = outDir,
                kind,
                method = method.ToString().ToLowerInvariant(),
                kv_heads = kvHeads,
                calibration_tokens = used,
                layers = r.Layers.Select(l => new { layer = l.Layer, groups = l.Groups, key_error = l.KeyError, value_error = l.ValueError }),
                query_heads = r.QueryHeadOrigin,
                files,
            }));
            return 0;
        }
        string G(double x) => x.ToString("G3", CultureInfo.InvariantCulture);
        stdout.WriteLine($"converted    {loaded.Path}: {loaded.Config.NKvHeads} → {kvHeads} key/value heads per layer ({method.ToString().ToLowerInvariant()}), calibrated on {used} tokens");
        var table = new CliTable(">layer", "groups (old kv heads)", ">key error", ">value error");
        foreach (var l in r.Layers)
        {
            string groups = string.Join(" ", l.Groups.Select(g => "{" + string.Join(",", g) + "}"));
            table.Row($"{l.Layer}", groups, G(l.KeyError), G(l.ValueError));
        }
        table.Write(stdout);
        for (int l = 0; l < r.QueryHeadOrigin.Length; l++)
        {
            var o = r.QueryHeadOrigin[l];
            if (o.Where((old, h) => old != h).Any())
            {
                stdout.WriteLine($"heads {l}: new ← old  " + string.Join(", ", o.Select((old, h) => $"{l}.{h} ← {l}.{old}")));
            }
        }
        stdout.WriteLine($"wrote        {outDir}: {string.Join(", ", files)}");
        return 0;
    }

    private static int Mla(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        string outDir = args.Require("out", "the directory to write");
        foreach (string other in new[] { "kv-heads", "method", "heads", "by-importance" }.Where(args.Has))
        {
            throw new UsageException($"--{other} belongs to convert {(other is "heads" or "by-importance" ? "prune" : "gqa")}");
        }
        var format = (args.Get("format") ?? "headwise") switch
        {
            "headwise" => MlaFormat.Headwise,
            "deepseek_v3" => MlaFormat.DeepseekV3,
            var f => throw new UsageException($"--format {f}: expected headwise or deepseek_v3"),
        };
        bool byFraction = args.Has("kv-fraction");
        if (byFraction == (args.Has("kv-rank") || args.Has("rope-dim")))
        {
            throw new UsageException("give the cache size: --kv-fraction F, or --kv-rank R with --rope-dim D (one of them)");
        }
        double fraction = args.GetDouble("kv-fraction", 1);
        if (byFraction && !(fraction > 0 && fraction <= 1))
        {
            throw new UsageException($"--kv-fraction {args.Get("kv-fraction")}: must be more than 0 and at most 1 (the share of the original KV cache to keep)");
        }
        if (!byFraction && !(args.Has("kv-rank") && args.Has("rope-dim")))
        {
            throw new UsageException("--kv-rank R and --rope-dim D go together (or give --kv-fraction F)");
        }
        int rank = args.GetInt("kv-rank", 0), rope = args.GetInt("rope-dim", 0);
        var dtype = CheckpointOutput.DType(args);
        CheckpointOutput.RequireNew(outDir);
        string? calibrationFile = CalibrationFile(args);
        using var loaded = ModelArgs.Load(args);
        var c = loaded.Config;
        MlaConversion.CheckSource(c, format);
        if (byFraction)
        {
            (rank, rope) = MlaConversion.RanksFor(c, fraction, format);
        }
        int[] ids = Calibration(loaded, calibrationFile);
        var progress = new ProgressBar(stderr, enabled: !json || !Console.IsErrorRedirected).Stage("converting layers");
        var r = MlaConversion.Convert(loaded.Model, rank, rope, ids, format, progress, CliMain.Cancellation);
        if (!json)
        {
            stderr.WriteLine("headwise convert: scoring the original and the converted model on the calibration text");
        }
        double before = MlaConversion.Nll(loaded.Model, ids), after, cost = double.NaN;
        using (var converted = r.Checkpoint.ToModel())
        {
            after = MlaConversion.Nll(converted, ids);
        }
        if (format == MlaFormat.DeepseekV3)
        {
            using var withoutNorm = MlaConversion.WithoutLatentNorm(r).ToModel();
            cost = after - MlaConversion.Nll(withoutNorm, ids);
        }
        var files = CheckpointOutput.Write(dir => r.Checkpoint.Save(dir, dtype), loaded, args.Get("tokenizer"), outDir, stderr, "convert");
        int used = Math.Min(ids.Length, c.MaxPositions), original = 2 * c.NKvHeads * c.DHead;
        string formatName = format == MlaFormat.Headwise ? "headwise" : "deepseek_v3";
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                @out = outDir,
                kind = "mla",
                format = formatName,
                kv_rank = r.KvRank,
                rope_dim = r.RopeDim,
                cache_floats_per_layer = r.KvRank + r.RopeDim,
                original_cache_floats_per_layer = original,
                kv_fraction = (double)(r.KvRank + r.RopeDim) / original,
                calibration_tokens = used,
                nll_original = before,
                nll_converted = after,
                latent_norm_nll_cost = format == MlaFormat.DeepseekV3 ? cost : (double?)null,
                layers = r.Layers.Select(l => new { layer = l.Layer, key_error = l.KeyError, value_error = l.ValueError, joint_error = l.JointError, nope_key_energy = l.NopeKeyEnergy }),
                files,
            }));
            return 0;
        }
        string G(double x) => x.ToString("G3", CultureInfo.InvariantCulture);
        string F4(double x) => x.ToString("F4", CultureInfo.InvariantCulture);
        stdout.WriteLine($"converted    {loaded.Path}: {c.NKvHeads} kv heads × {c.DHead} (keys and values, {original} floats per token and layer) → "
            + $"latent {r.KvRank} + rotary key {r.RopeDim} = {r.KvRank + r.RopeDim} ({G((double)(r.KvRank + r.RopeDim) / original)} of the cache), format {formatName}, calibrated on {used} tokens");
        var table = new CliTable(">layer", ">key error", ">value error", ">joint error", ">key energy without RoPE");
        foreach (var l in r.Layers)
        {
            table.Row($"{l.Layer}", G(l.KeyError), G(l.ValueError), G(l.JointError), G(l.NopeKeyEnergy));
        }
        table.Write(stdout);
        stdout.WriteLine($"nll          {F4(before)} → {F4(after)} nats/token on the calibration text (Δ {F4(after - before)})");
        if (format == MlaFormat.DeepseekV3)
        {
            stdout.WriteLine($"note         kv_a_layernorm cannot be expressed exactly: its weight is the latent's RMS on the calibration text "
                + $"(per layer {string.Join(", ", r.LatentNormWeights!.Select(w => G(w)))}); that costs {F4(cost)} nats/token there");
        }
        stdout.WriteLine($"wrote        {outDir}: {string.Join(", ", files)}");
        return 0;
    }

    /// <summary>--calibration FILE, checked before the model loads.</summary>
    private static string? CalibrationFile(CliArgs args)
    {
        string? file = args.Get("calibration");
        return file is null || File.Exists(file) ? file : throw new UsageException($"--calibration {file}: file not found");
    }

    /// <summary>The calibration text's tokens: the file's, else the built-in text's.</summary>
    private static int[] Calibration(LoadedModel loaded, string? file) =>
        loaded.RequireTokenizer().Encode(file is null ? CalibrationText.Default : File.ReadAllText(file));

    private static int Prune(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        string outDir = args.Require("out", "the directory to write");
        string? headsArg = args.Get("heads");
        if ((headsArg is null) == !args.Has("by-importance"))
        {
            throw new UsageException("give the heads to prune: --heads L.H,... or --by-importance N (one of them)");
        }
        if (args.Has("kv-heads") || args.Has("method"))
        {
            throw new UsageException("--kv-heads and --method belong to convert gqa");
        }
        // as convert mla: Headwise's own layout by default, the Hugging Face form on request
        bool removed = (args.Get("format") ?? "headwise") switch
        {
            "headwise" => true,
            "hf" => false,
            var f => throw new UsageException($"--format {f}: expected headwise (heads removed) or hf (heads zeroed)"),
        };
        var dtype = CheckpointOutput.DType(args);
        CheckpointOutput.RequireNew(outDir);
        string? calibrationFile = CalibrationFile(args);
        using var loaded = ModelArgs.Load(args);
        var c = loaded.Config;
        Analysis.HeadId[] heads;
        if (headsArg is not null)
        {
            heads = Analysis.HeadId.ParseList(headsArg, c.NLayers, c.NHeads);
            if (heads.Length == 0)
            {
                throw new UsageException($"--heads {headsArg}: no heads given (L.H,..., e.g. 1.0,2.3)");
            }
            HeadPruning.Check(c, heads);
        }
        else
        {
            int n = args.GetInt("by-importance", 0, 1, c.NLayers * c.NHeads - 1);
            HeadPruning.CheckModel(c);
            int[] ids = Calibration(loaded, calibrationFile);
            var bar = new ProgressBar(stderr, enabled: !json);
            heads = HeadPruning.LeastImportant(loaded.Model, ids, n, bar, CliMain.Cancellation);
        }
        var result = removed ? HeadPruning.Removed(loaded.Model, heads) : null;
        var weights = result?.Weights ?? HeadPruning.Zeroed(loaded.Model, heads);
        var files = CheckpointOutput.Write(weights, loaded, args.Get("tokenizer"), outDir, dtype, stderr, "convert");
        var after = weights.Config;
        long kvBefore = KvBytes(c), kvAfter = KvBytes(after);
        string how = removed
            ? $"removed (Headwise format, per-layer head counts: {string.Join(" ", Enumerable.Range(0, c.NLayers).Select(after.HeadsIn))}); loads in Headwise only"
            : "zeroed (W_O = 0), not removed: a Hugging Face checkpoint has one head count for all layers";
        string zeroedToo = result is { KeptZeroed.Length: > 0 } r
            ? $"kept as zeroed heads (W_O = 0), the shape needs them (a kv head still serving other query heads, or a layer's last group): {string.Join(", ", r.KeptZeroed)}"
            : "";
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new
            {
                @out = outDir,
                kind = "prune",
                format = removed ? "headwise" : "hf",
                heads = heads.Select(h => h.ToString()),
                zeroed = !removed,
                kept_zeroed = (result?.KeptZeroed ?? Array.Empty<Analysis.HeadId>()).Select(h => h.ToString()),
                query_heads = Enumerable.Range(0, c.NLayers).Select(after.HeadsIn),
                kv_heads = Enumerable.Range(0, c.NLayers).Select(after.KvHeadsIn),
                parameters = new { before = c.ParameterCount, after = after.ParameterCount },
                kv_cache_bytes_per_token = new { before = kvBefore, after = kvAfter },
                files,
            }));
            stderr.WriteLine($"note: {heads.Length} head(s) {how}");
            return 0;
        }
        stdout.WriteLine($"pruned       {heads.Length} of {c.NLayers * c.NHeads} heads: {string.Join(", ", heads)}");
        stdout.WriteLine($"note         {how}{(removed ? "" : "; the parameters and FLOPs are the same")}");
        if (zeroedToo.Length > 0)
        {
            stdout.WriteLine($"note         {zeroedToo}");
        }
        stdout.WriteLine($"parameters   {c.ParameterCount:N0} → {after.ParameterCount:N0}; KV cache {kvBefore:N0} → {kvAfter:N0} bytes/token");
        stdout.WriteLine($"wrote        {outDir}: {string.Join(", ", files)}");
        return 0;
    }

    // float32 keys and values of every layer's own kv heads, per token (what `info --json` reports for these families)
    private static long KvBytes(Loading.ModelConfig c) =>
        Enumerable.Range(0, c.NLayers).Sum(l => 2L * c.KvHeadsIn(l) * c.DHead * sizeof(float));
}
