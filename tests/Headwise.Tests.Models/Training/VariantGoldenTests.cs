using System.Text.Json;
using Headwise.Training;

namespace Headwise.Tests.Models.Training;

// The loss and every parameter gradient of one small GPT-2 model per attention variant against PyTorch autograd on the
// variant's formula (dev/reference/make_variant_goldens.py → tests/goldens/train_variants/<variant>/). Tolerances as in
// TorchGoldenTests: the loss to 1e-4 relative, each gradient tensor to 1e-4 of its largest entry.
public class VariantGoldenTests
{
    public static TheoryData<string> Cases => ["symmetric_qk", "moh", "linear", "sinkhorn", "affine_scaled", "gaussian", "low_rank", "relative_conv"];

    [Theory]
    [MemberData(nameof(Cases))]
    public void LossAndEveryGradientMatchPyTorch(string variant)
    {
        string dir = Path.Combine(TestPaths.Goldens, "train_variants", variant);
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement;
        var config = TrainableConfig.FromJson(golden.GetProperty("config").GetRawText(), "golden.json");
        Assert.Equal(variant, config.AttentionVariant);
        var model = new TrainableTransformer(config);
        var weights = TorchGoldenTests.ReadSafetensors(Path.Combine(dir, "weights.safetensors"));
        Assert.Equal(model.Parameters.Select(p => p.Name).Order(), weights.Keys.Order());
        foreach (var p in model.Parameters)
        {
            Assert.Equal(p.Length, weights[p.Name].Length);
            weights[p.Name].CopyTo(model.Params, p.Offset);
        }
        int B = golden.GetProperty("batch").GetInt32(), T = golden.GetProperty("seq_len").GetInt32();
        var tokens = golden.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var targets = golden.GetProperty("targets").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        model.ZeroGrad();
        float loss = model.Forward(tokens, targets, B, T);
        model.Backward();
        float expected = golden.GetProperty("loss").GetSingle();
        Assert.True(Math.Abs(loss - expected) <= 1e-4 * expected, $"{variant}: loss {loss} vs PyTorch {expected}");
        var grads = TorchGoldenTests.ReadSafetensors(Path.Combine(dir, "grads.safetensors"));
        foreach (var p in model.Parameters)
        {
            var reference = grads[p.Name];
            var mine = model.Grad(p.Name);
            float scale = reference.Max(Math.Abs);
            Assert.True(scale > 0, $"{variant} {p.Name}: zero reference gradient");
            float worst = 0;
            for (int i = 0; i < reference.Length; i++) worst = Math.Max(worst, Math.Abs(mine[i] - reference[i]));
            Assert.True(worst <= 1e-4f * scale, $"{variant} {p.Name}: max |Δgrad| {worst:G3} > 1e-4 × {scale:G3}");
        }
    }
}
