using Headwise.Training;

namespace Headwise.Tests.Unit.Training;

// The whole model's backward against finite differences of its own float32 forward, one check per parameter tensor:
// along a random unit direction u supported on that tensor, (L(θ + hu) − L(θ − hu)) / 2h must equal ∇L·u.
// With h = 1e-2 and weights of std 0.3 the truncation error is O(h²)·|L'''| ≈ 1e-5 and float rounding of L (~3e-7)
// contributes ~3e-5, so 1e-4 absolute + 2% relative separates a correct gradient from a wrong one (errors of O(∇L·u)).
public class ModelGradientTests
{
    public static TheoryData<string> Variants => ["gpt2", "gpt2-untied", "llama-gqa", "llama-combined-ov", "gpt2-attn-only-no-norm", "gpt2-single-head-combined",
        "gpt2-attn-only-no-bias", "one-hot-factored", "one-hot-combined", "llama-no-rope",
        "gpt2-symmetric-qk", "llama-symmetric-qk", "gpt2-collapsed-qk", "llama-collapsed-qk", "gpt2-moh", "llama-moh-no-shared", "gpt2-linear", "llama-linear", "gpt2-sinkhorn", "llama-sinkhorn",
        "gpt2-affine-scaled", "llama-affine-scaled", "gpt2-gaussian", "llama-gaussian", "gpt2-low-rank", "llama-low-rank-combined-ov",
        "gpt2-relative-conv", "llama-relative-conv",
        "gpt2-random-features", "llama-random-features", "gpt2-dynamic-mask", "llama-dynamic-mask", "gpt2-tensor", "llama-tensor",
        "llama-mla", "llama-mla-qlora", "gpt2-mla", "gpt2-shared", "llama-shared"];

    internal static TrainableConfig Variant(string name)
    {
        var gpt2 = new TrainableConfig { VocabSize = 11, DModel = 8, NLayers = 2, NHeads = 2, SeqLen = 6, DMlp = 12, InitStd = 0.3f };
        var llama = gpt2 with { Architecture = TrainableArchitecture.Llama, NHeads = 4, NKvHeads = 2, DHead = 4 };
        return name switch
        {
            "gpt2" => gpt2,
            "gpt2-untied" => gpt2 with { TiedEmbeddings = false },
            "llama-gqa" => llama with { TiedEmbeddings = false },
            "llama-combined-ov" => llama with { CombinedOV = true },
            "gpt2-attn-only-no-norm" => gpt2 with { AttentionOnly = true, UseNorm = false },
            "gpt2-single-head-combined" => gpt2 with { NHeads = 1, CombinedOV = true },
            // the induction and OCR experiments' models (ignored targets: see Masked)
            "gpt2-attn-only-no-bias" => gpt2 with { AttentionOnly = true, UseNorm = false, UseBias = false, TiedEmbeddings = false },
            "one-hot-factored" => gpt2 with { DModel = 11, NHeads = 1, DHead = 5, AttentionOnly = true, UseNorm = false, UseBias = false, UsePositions = false, OneHotEmbeddings = true },
            "one-hot-combined" => Variant("one-hot-factored") with { CombinedOV = true },
            "llama-no-rope" => llama with { UsePositions = false },
            "gpt2-symmetric-qk" => gpt2 with { AttentionVariant = AttentionVariants.SymmetricQk },
            "llama-symmetric-qk" => llama with { NKvHeads = 4, AttentionVariant = AttentionVariants.SymmetricQk },
            "gpt2-collapsed-qk" => gpt2 with { AttentionVariant = AttentionVariants.CollapsedQk },
            "llama-collapsed-qk" => llama with { NKvHeads = 4, AttentionVariant = AttentionVariants.CollapsedQk },
            "gpt2-moh" => gpt2 with { NHeads = 4, DHead = 2, AttentionVariant = AttentionVariants.Moh, MohShared = 1, MohActive = 2 },
            "llama-moh-no-shared" => llama with { AttentionVariant = AttentionVariants.Moh, MohShared = 0, MohActive = 1 },
            "gpt2-linear" => gpt2 with { AttentionVariant = AttentionVariants.Linear },
            "llama-linear" => llama with { AttentionVariant = AttentionVariants.Linear },
            "gpt2-sinkhorn" => gpt2 with { AttentionVariant = AttentionVariants.Sinkhorn },
            "llama-sinkhorn" => llama with { AttentionVariant = AttentionVariants.Sinkhorn, SinkhornIters = 2 },
            "gpt2-affine-scaled" => gpt2 with { AttentionVariant = AttentionVariants.AffineScaled },
            "llama-affine-scaled" => llama with { AttentionVariant = AttentionVariants.AffineScaled },
            "gpt2-gaussian" => gpt2 with { AttentionVariant = AttentionVariants.Gaussian },
            "llama-gaussian" => llama with { AttentionVariant = AttentionVariants.Gaussian },
            "gpt2-low-rank" => gpt2 with { AttentionVariant = AttentionVariants.LowRank, LowRank = 3 },
            "llama-low-rank-combined-ov" => llama with { AttentionVariant = AttentionVariants.LowRank, CombinedOV = true },
            "gpt2-relative-conv" => gpt2 with { AttentionVariant = AttentionVariants.RelativeConv },
            "llama-relative-conv" => llama with { AttentionVariant = AttentionVariants.RelativeConv, ConvKernel = 2 },
            "gpt2-random-features" => gpt2 with { AttentionVariant = AttentionVariants.RandomFeatures, FeatureSeed = 3 },
            "llama-random-features" => llama with { AttentionVariant = AttentionVariants.RandomFeatures },
            "gpt2-dynamic-mask" => gpt2 with { AttentionVariant = AttentionVariants.DynamicMask, MaskWindow = 3 },
            "llama-dynamic-mask" => llama with { AttentionVariant = AttentionVariants.DynamicMask, MaskWindow = 4 },
            "gpt2-tensor" => gpt2 with { AttentionVariant = AttentionVariants.Tensor },
            "llama-tensor" => llama with { AttentionVariant = AttentionVariants.Tensor },
            // Headwise's converted layout: its own scale, no latent norm, a query bias, chosen RoPE frequencies; odd value heads
            "llama-mla" => llama with
            {
                NKvHeads = 4,
                DHead = 3,
                Mla = new TrainableMla { KvLoraRank = 5, NopeDim = 3, RopeDim = 4, AttentionScale = 0.4f, LatentNorm = false, QueryBias = true, RopeFrequencies = [1, 0], RopeSourceDims = 4 },
            },
            // stock DeepSeek-V3: q_a → norm → q_b, kv_a_layernorm, attention_bias, rotate-half pairs
            "llama-mla-qlora" => llama with
            {
                NKvHeads = 4,
                TiedEmbeddings = false,
                Mla = new TrainableMla { QLoraRank = 6, KvLoraRank = 3, NopeDim = 2, RopeDim = 2, AttentionBias = true, RopeInterleave = false },
            },
            // a GPT-2 conversion: LayerNorm, GELU MLP with biases, learned positions around a latent attention without a rotary
            // key, with the query bias and attention_bias (kv_a_proj_with_mqa and the output) that `convert mla` writes from GPT-2
            "gpt2-mla" => gpt2 with
            {
                NHeads = 4,
                DHead = 3,
                Mla = new TrainableMla { KvLoraRank = 5, NopeDim = 3, RopeDim = 0, AttentionScale = 0.5f, LatentNorm = false, QueryBias = true, AttentionBias = true, RopeFrequencies = [] },
            },
            // shared attention [EchoAtt]: the later layers of a group reuse the first one's pattern (its gradient flows back there)
            "gpt2-shared" => gpt2 with { NLayers = 3, SharedGroups = [[0, 2]] },
            "llama-shared" => llama with { NLayers = 3, SharedGroups = [[0, 1, 2]] },
            _ => throw new ArgumentException(name),
        };
    }

    private static bool Masked(string variant) => variant is "gpt2-attn-only-no-bias" or "one-hot-factored" or "one-hot-combined";

    [Theory]
    [MemberData(nameof(Variants))]
    public void EveryParameterTensorMatchesFiniteDifferences(string variant)
    {
        var model = new TrainableTransformer(Variant(variant), seed: 5);
        int B = 2, T = 6;
        var r = new Random(11);
        var tokens = Enumerable.Range(0, B * T).Select(_ => r.Next(11)).ToArray();
        var targets = Enumerable.Range(0, B * T).Select(_ => r.Next(11)).ToArray();
        if (Masked(variant))
        {
            // positions without a loss (CrossEntropy.Ignore), as in the task experiments
            targets[0] = targets[4] = targets[11] = -1;
        }
        model.ZeroGrad();
        model.Forward(tokens, targets, B, T);
        model.Backward();
        var grads = (float[])model.Grads.Clone();
        const float h = 1e-2f;
        foreach (var p in model.Parameters)
        {
            var u = LayerGradientTests.Rand(r, p.Length);
            double norm = Math.Sqrt(u.Sum(x => (double)x * x));
            double analytic = 0;
            for (int i = 0; i < p.Length; i++)
            {
                u[i] = (float)(u[i] / norm);
                analytic += (double)u[i] * grads[p.Offset + i];
            }
            var saved = model.Params.AsSpan(p.Offset, p.Length).ToArray();
            for (int i = 0; i < p.Length; i++) model.Params[p.Offset + i] = saved[i] + h * u[i];
            double plus = model.Forward(tokens, targets, B, T);
            for (int i = 0; i < p.Length; i++) model.Params[p.Offset + i] = saved[i] - h * u[i];
            double minus = model.Forward(tokens, targets, B, T);
            saved.CopyTo(model.Params, p.Offset);
            double fd = (plus - minus) / (2 * h);
            Assert.True(Math.Abs(fd - analytic) <= 1e-4 + 0.02 * Math.Abs(analytic),
                $"{variant} {p.Name}: finite difference {fd:G6} vs backward {analytic:G6}");
        }
    }

    [Fact]
    public void BackwardAccumulatesWithScale()
    {
        var model = new TrainableTransformer(Variant("llama-gqa"), seed: 5);
        int[] tokens = [1, 2, 3, 4, 5, 6], targets = [2, 3, 4, 5, 6, 7];
        model.ZeroGrad();
        model.Forward(tokens, targets, 1, 6);
        model.Backward();
        var once = (float[])model.Grads.Clone();
        model.ZeroGrad();
        for (int i = 0; i < 2; i++)
        {
            model.Forward(tokens, targets, 1, 6);
            model.Backward(0.5f);
        }
        for (int i = 0; i < once.Length; i++) Assert.Equal(once[i], model.Grads[i], 1e-6f + 1e-5f * Math.Abs(once[i]));
    }
}
