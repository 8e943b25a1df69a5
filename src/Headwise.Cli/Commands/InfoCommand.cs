using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Cli.Commands;

public sealed class InfoCommand : ICommand
{
    public string Name => "info";
    public string Summary => "architecture, sizes, dtype and hook points of a model";
    public string Usage => """
        headwise info --model M [--json]
        """;

    public string Description => """
        Shows what a checkpoint is: family, parameter count, layers, heads (query and key/value), widths, context,
        stored dtype, positional scheme, and every hook point name (TransformerLens names, usable in hooks and caches).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Flag("json", "print one JSON object (schema in docs/cli.md)"),
    ];

    public string Examples => """
        Example:
          headwise info --model ../shared/models/stories260K/stories260K.bin
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        using var loaded = ModelArgs.Load(args);
        var c = loaded.Config;
        var hooks = loaded.Model.HookPoints.Select(p => p.Name).ToArray();
        var weights = loaded.Model.Weights;
        // F16/BF16 weights are converted on their first float32 read: count before the planning forward below reads them
        long convertedBytes = weights.ConvertedBytes;
        // resident memory as prefill will use it: the packed copies' size, counted from the weights' shapes (info makes none)
        long packedBytes = loaded.Model.Prepack ? loaded.Model.PlannedPackBytes() : 0;
        var info = new
        {
            path = loaded.Path,
            model_type = c.ModelType,
            family = c.Family.ToString(),
            parameters = c.ParameterCount,
            layers = c.NLayers,
            heads = c.NHeads,
            kv_heads = c.NKvHeads,
            d_model = c.DModel,
            d_head = c.DHead,
            d_mlp = c.DMlp,
            n_ctx = c.MaxPositions,
            vocab_size = c.VocabSize,
            dtype = c.StoredDType.ToString(),
            activation = c.ActivationName,
            positional = c.RotaryDims > 0 ? "rotary" : "learned",
            rotary_dims = c.RotaryDims,
            rope_theta = c.RotaryDims > 0 ? c.RopeTheta : (double?)null,
            rope_layout = c.RotaryDims > 0 ? c.RopeLayout.ToString() : null,
            parallel_residual = c.ParallelResidual,
            sliding_window = c.SlidingWindow,
            tied_embeddings = c.TiedEmbeddings,
            bos_token_id = c.BosTokenId,
            eos_token_id = c.EosTokenId,
            tokenizer = loaded.Tokenizer is not null,
            weights_mapped_bytes = weights.MappedBytes,
            weights_converted_bytes = convertedBytes,
            prepack = loaded.Model.Prepack,
            weights_packed_bytes = packedBytes,
            kv_cache_bytes_per_token = loaded.Model.KvCacheBytesPerToken,
            mla = c.Mla is { } latent ? new
            {
                q_lora_rank = latent.QLoraRank > 0 ? latent.QLoraRank : (int?)null,
                kv_lora_rank = latent.KvLoraRank,
                qk_nope_head_dim = latent.QkNopeHeadDim,
                qk_rope_head_dim = latent.QkRopeHeadDim,
                v_head_dim = c.DHead,
                absorbed_query_bytes = (loaded.Model as DeepseekV3)?.AbsorbedQueryBytes ?? 0,
            } : null,
            layer_heads = c.LayerHeads is { } lh ? new { query_heads = lh.QueryHeads, kv_heads = lh.KvHeads, kept = lh.Kept } : null,
            hook_points = hooks,
        };
        if (json)
        {
            stdout.WriteLine(Json.Serialize(info));
            return 0;
        }
        stdout.WriteLine($"model        {loaded.Path}");
        stdout.WriteLine($"type         {c.ModelType} ({c.Family} family)");
        stdout.WriteLine($"parameters   {c.ParameterCount:N0}");
        stdout.WriteLine($"layers       {c.NLayers}");
        stdout.WriteLine($"heads        {c.NHeads} query, {c.NKvHeads} key/value{(c.NKvHeads != c.NHeads ? $" (grouped: {c.KvGroupSize} query heads per kv head)" : "")}");
        if (c.LayerHeads is { } pruned)
        {
            stdout.WriteLine($"pruned       per-layer query heads {string.Join(" ", pruned.QueryHeads)}, kv heads {string.Join(" ", pruned.KvHeads)} (headwise_heads; the counts above are the most a layer has)");
        }
        stdout.WriteLine($"widths       d_model {c.DModel}, d_head {c.DHead}, d_mlp {c.DMlp}");
        if (c.Mla is { } mla)
        {
            stdout.WriteLine($"latent       multi-head latent attention: kv_lora_rank {mla.KvLoraRank}, q_lora_rank {(mla.QLoraRank > 0 ? mla.QLoraRank.ToString() : "none (a full-rank query)")}, q/k heads {mla.QkNopeHeadDim} + {mla.QkRopeHeadDim} rotary, v heads {c.DHead}");
            long absorbed = (loaded.Model as DeepseekV3)?.AbsorbedQueryBytes ?? 0;
            stdout.WriteLine($"decode       absorbed: {(absorbed > 0 ? $"W_UK folded into the query projection, {absorbed / 1e6:F1} MB made on the first decode step" : "W_UK applied to the query per step (kv_lora_rank ≥ qk_nope_head_dim: folding would enlarge it)")}");
        }
        stdout.WriteLine($"context      {c.MaxPositions} positions, vocabulary {c.VocabSize}");
        stdout.WriteLine($"dtype        {c.StoredDType} stored, float32 compute ({weights.MappedBytes / 1e6:F1} MB mapped, {convertedBytes / 1e6:F1} MB converted)");
        stdout.WriteLine($"prepack      {(loaded.Model.Prepack ? $"on: prefill packs {packedBytes / 1e6:F1} MB of weights for its GEMM (on first use)" : "off")} (--prepack auto|on|off)");
        stdout.WriteLine($"positions    {(c.RotaryDims > 0 ? $"RoPE on {c.RotaryDims}/{c.Mla?.QkHeadDim ?? c.DHead} dims, θ = {c.RopeTheta}, {c.RopeLayout}" : "learned embeddings")}");
        stdout.WriteLine($"mlp          {c.ActivationName}{(c.GatedMlp ? " (SwiGLU)" : "")}{(c.ParallelResidual ? ", parallel residual" : "")}{(c.SlidingWindow > 0 ? $", sliding window {c.SlidingWindow}" : "")}");
        string perToken = c.Mla is { } m ? $"{c.NLayers} layers × ({m.KvLoraRank} latent + {m.QkRopeHeadDim} rotary key) × 4 bytes"
            : $"{c.NLayers} layers × keys and values × {c.NKvHeads} kv heads × {c.DHead} × 4 bytes";
        stdout.WriteLine($"kv cache     {loaded.Model.KvCacheBytesPerToken:N0} bytes per token ({perToken}; {loaded.Model.KvCacheBytesPerToken * (long)c.MaxPositions / 1e6:F1} MB at the full context of {c.MaxPositions})");
        stdout.WriteLine($"tokens       BOS {c.BosTokenId?.ToString() ?? "-"}, EOS {c.EosTokenId?.ToString() ?? "-"}, tokenizer {(loaded.Tokenizer is null ? "none" : "found")}");
        stdout.WriteLine($"hook points  {hooks.Length}:");
        foreach (var h in hooks.Where(h => !h.StartsWith("blocks.", StringComparison.Ordinal) || h.StartsWith("blocks.0.", StringComparison.Ordinal)))
        {
            stdout.WriteLine($"  {h}");
        }
        if (c.NLayers > 1)
        {
            stdout.WriteLine($"  (blocks.1 … blocks.{c.NLayers - 1} have the same points as blocks.0)");
        }
        return 0;
    }
}
