using Headwise.Training;

namespace Headwise.Cli.Commands;

/// <summary>The attention-variant options shared by `train` and `experiment variants`.</summary>
internal static class VariantArgs
{
    public static TrainableConfig Apply(CliArgs args, TrainableConfig config)
    {
        string variant = args.Get("attention-variant") ?? AttentionVariants.Softmax;
        if (!AttentionVariants.All.Contains(variant))
        {
            throw new UsageException($"--attention-variant: unknown variant '{variant}' (known: {string.Join(", ", AttentionVariants.All)})");
        }
        bool moh = variant == AttentionVariants.Moh;
        foreach (var o in new[] { "moh-active", "moh-shared" })
        {
            if (!moh && args.Has(o)) throw new UsageException($"--{o} applies to --attention-variant moh only");
        }
        if (variant != AttentionVariants.Sinkhorn && args.Has("sinkhorn-iters"))
        {
            throw new UsageException("--sinkhorn-iters applies to --attention-variant sinkhorn only");
        }
        if (variant != AttentionVariants.LowRank && args.Has("low-rank"))
        {
            throw new UsageException("--low-rank applies to --attention-variant low_rank only");
        }
        if (variant != AttentionVariants.RelativeConv && args.Has("conv-kernel"))
        {
            throw new UsageException("--conv-kernel applies to --attention-variant relative_conv only");
        }
        if (variant != AttentionVariants.DynamicMask && args.Has("mask-window"))
        {
            throw new UsageException("--mask-window applies to --attention-variant dynamic_mask only");
        }
        // a K or S that does not fit the heads is refused by TrainableConfig.Validate, naming the option (exit 2)
        return config with
        {
            AttentionVariant = variant,
            MohShared = args.GetInt("moh-shared", -1, 0, 4096),
            MohActive = args.GetInt("moh-active", 0, 1, 4096),
            SinkhornIters = args.GetInt("sinkhorn-iters", 3, 0, 100),
            LowRank = args.GetInt("low-rank", 0, 1, 65536),
            ConvKernel = args.GetInt("conv-kernel", 3, 1, 65536),
            MaskWindow = args.GetInt("mask-window", 0, 1, 1 << 16),
            // random_features: the frozen W_Q, W_K are drawn from the training seed
            FeatureSeed = args.GetInt("seed", 0),
        };
    }
}
