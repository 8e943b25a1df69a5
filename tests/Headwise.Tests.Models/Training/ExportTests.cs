using Headwise.Loading;
using Headwise.Models;
using Headwise.Training;

namespace Headwise.Tests.Models.Training;

// A trained-then-exported model loads through the engine's ModelLoader and its logits equal the trainer's forward.
public class ExportTests
{
    public static TheoryData<string> Exportable => ["gpt2-tied", "gpt2-untied", "gpt2-attn-only", "llama-gqa", "llama-tied-attn-only",
        "gpt2-no-bias-no-positions", "gpt2-one-hot", "gpt2-symmetric-qk", "llama-symmetric-qk",
        "llama-collapsed-qk", "gpt2-one-head-collapsed-qk", "gpt2-low-rank", "llama-low-rank", "gpt2-random-features", "llama-random-features"];

    private static TrainableConfig Config(string name)
    {
        var gpt2 = new TrainableConfig { VocabSize = 13, DModel = 16, NLayers = 2, NHeads = 4, SeqLen = 10, DMlp = 24, InitStd = 0.2f };
        var llama = gpt2 with { Architecture = TrainableArchitecture.Llama, NKvHeads = 2, TiedEmbeddings = false, RopeTheta = 500 };
        return name switch
        {
            "gpt2-tied" => gpt2,
            "gpt2-untied" => gpt2 with { TiedEmbeddings = false },
            "gpt2-attn-only" => gpt2 with { AttentionOnly = true },
            "llama-gqa" => llama,
            "llama-tied-attn-only" => llama with { TiedEmbeddings = true, AttentionOnly = true },
            "gpt2-no-bias-no-positions" => gpt2 with { UseBias = false, UsePositions = false, TiedEmbeddings = false },
            "gpt2-one-hot" => gpt2 with { VocabSize = 16, OneHotEmbeddings = true, TiedEmbeddings = false, AttentionOnly = true },
            // exported with W_K = W_Q (and b_k = b_q)
            "gpt2-symmetric-qk" => gpt2 with { AttentionVariant = AttentionVariants.SymmetricQk },
            "llama-symmetric-qk" => llama with { NKvHeads = 4, AttentionVariant = AttentionVariants.SymmetricQk },
            // exported at head size d_model: W_Q = W_QK, W_K = I, W_V and W_O zero-padded
            "llama-collapsed-qk" => llama with { NKvHeads = 4, AttentionVariant = AttentionVariants.CollapsedQk },
            "gpt2-one-head-collapsed-qk" => gpt2 with { NHeads = 1, AttentionVariant = AttentionVariants.CollapsedQk },
            // exported with W_qkv = W_up·W_down
            "gpt2-low-rank" => gpt2 with { AttentionVariant = AttentionVariants.LowRank, LowRank = 3 },
            "llama-low-rank" => llama with { AttentionVariant = AttentionVariants.LowRank },
            // exported with the frozen W_Q, W_K and zero q/k biases
            "gpt2-random-features" => gpt2 with { AttentionVariant = AttentionVariants.RandomFeatures, FeatureSeed = 5 },
            "llama-random-features" => llama with { AttentionVariant = AttentionVariants.RandomFeatures },
            _ => throw new ArgumentException(name),
        };
    }

    [Theory]
    [MemberData(nameof(Exportable))]
    public void LoadedCheckpointGivesTheTrainersLogits(string name)
    {
        var model = new TrainableTransformer(Config(name), seed: 9);
        // a few training steps so biases and norms are no longer at their initial 0/1
        int[] data = Enumerable.Range(0, 400).Select(i => (i * 7 + i / 13) % 13).ToArray();
        new Trainer(model, new TrainerOptions { Steps = 3, BatchSize = 2, LearningRate = 0.05f, WeightDecay = 0.5f, HeldOutFraction = 0 }, data).Train();
        string dir = Path.Combine(Path.GetTempPath(), "hw-export-" + Guid.NewGuid().ToString("N"));
        try
        {
            model.SaveHf(dir);
            int[] tokens = [3, 1, 4, 1, 5, 9, 2, 6];
            model.Forward(tokens, default, 1, tokens.Length);
            var mine = model.Logits.ToArray();
            using var loaded = ModelLoader.Load(dir);
            var theirs = loaded.Model.Forward(ModelInput.Single(tokens));
            Assert.Equal(mine.Length, theirs.Length);
            float maxAbs = mine.Max(Math.Abs);
            Assert.True(maxAbs > 0.1f, "logits too small for the comparison to mean anything");
            for (int i = 0; i < mine.Length; i++)
            {
                Assert.True(Math.Abs(mine[i] - theirs[i]) <= 1e-4f * Math.Max(1, maxAbs), $"{name}: logit {i}: trainer {mine[i]} vs loaded {theirs[i]}");
            }
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("combined", "combined W_OV")]
    [InlineData("no-norm", "without LayerNorm")]
    [InlineData("gpt2-gqa", "grouped key/value heads")]
    [InlineData("llama-no-rope", "always applies RoPE")]
    [InlineData("moh", "training-only: the moh attention")]
    [InlineData("linear", "training-only: the linear attention")]
    [InlineData("dynamic_mask", "training-only: the dynamic_mask attention")]
    [InlineData("tensor", "training-only: the tensor attention")]
    [InlineData("collapsed_qk", "collapsed_qk's query/key head size is d_model, and GPT-2 checkpoints need")]
    [InlineData("sinkhorn", "training-only: the sinkhorn attention")]
    [InlineData("affine_scaled", "training-only: the affine_scaled attention")]
    [InlineData("gaussian", "training-only: the gaussian attention")]
    [InlineData("relative_conv", "training-only: the relative_conv attention")]
    public void InexpressibleOptionsRefuseToExport(string what, string message)
    {
        var c = Config("gpt2-tied");
        c = what switch
        {
            "combined" => c with { CombinedOV = true },
            "no-norm" => c with { UseNorm = false },
            "llama-no-rope" => Config("llama-gqa") with { UsePositions = false },
            "moh" or "linear" or "collapsed_qk" or "sinkhorn" or "affine_scaled" or "gaussian" or "relative_conv" or "dynamic_mask" or "tensor" => c with { AttentionVariant = what },
            _ => c with { NKvHeads = 2 },
        };
        var model = new TrainableTransformer(c);
        var e = Assert.Throws<InvalidInputException>(() => model.SaveHf(Path.Combine(Path.GetTempPath(), "never-written")));
        Assert.Contains(message, e.Message);
        Assert.False(Directory.Exists(Path.Combine(Path.GetTempPath(), "never-written")));
    }
}
