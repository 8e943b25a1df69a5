using System.Text.Json;
using Headwise.Training;

namespace Headwise.Tests.Models.Training;

// The loss, every parameter gradient, and ten AdamW steps of tiny GPT-2 and Llama (GQA) models against an independent
// PyTorch implementation (dev/reference/make_train_goldens.py → tests/goldens/train/<case>/).
// Tolerances (fp32 against fp32 with different summation orders): the loss to 1e-4 relative; each gradient tensor to
// 1e-4 of that tensor's largest entry (element-wise relative error is meaningless for entries near 0); the ten losses to
// 1e-4 relative — AdamW normalises each update by √v, so entries whose gradients are pure rounding noise could move by
// up to lr each step; 1e-4 is what a correct optimiser reaches and a wrong bias correction, decay or clip does not.
public class TorchGoldenTests
{
    public static TheoryData<string> Cases => ["gpt2", "llama_gqa"];

    internal static Dictionary<string, float[]> ReadSafetensors(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        long n = BitConverter.ToInt64(bytes, 0);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        var result = new Dictionary<string, float[]>();
        foreach (var t in header.RootElement.EnumerateObject())
        {
            if (t.Name == "__metadata__") continue;
            var offsets = t.Value.GetProperty("data_offsets");
            long b0 = offsets[0].GetInt64(), b1 = offsets[1].GetInt64();
            var data = new float[(b1 - b0) / 4];
            Buffer.BlockCopy(bytes, (int)(8 + n + b0), data, 0, (int)(b1 - b0));
            result[t.Name] = data;
        }
        return result;
    }

    private static (TrainableTransformer Model, JsonElement Golden, string Dir) Load(string name)
    {
        string dir = Path.Combine(TestPaths.Goldens, "train", name);
        var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "golden.json"))).RootElement;
        var config = TrainableConfig.FromJson(golden.GetProperty("config").GetRawText(), "golden.json");
        var model = new TrainableTransformer(config);
        var weights = ReadSafetensors(Path.Combine(dir, "weights.safetensors"));
        Assert.Equal(model.Parameters.Select(p => p.Name).Order(), weights.Keys.Order());
        foreach (var p in model.Parameters)
        {
            Assert.Equal(p.Length, weights[p.Name].Length);
            weights[p.Name].CopyTo(model.Params, p.Offset);
        }
        return (model, golden, dir);
    }

    private static (int[] Tokens, int[] Targets) Batch(JsonElement step) =>
        (step.GetProperty("tokens").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
         step.GetProperty("targets").EnumerateArray().Select(e => e.GetInt32()).ToArray());

    [Theory]
    [MemberData(nameof(Cases))]
    public void LossAndEveryGradientMatchPyTorch(string name)
    {
        var (model, golden, dir) = Load(name);
        int B = golden.GetProperty("batch").GetInt32(), T = golden.GetProperty("seq_len").GetInt32();
        var (tokens, targets) = Batch(golden.GetProperty("steps")[0]);
        model.ZeroGrad();
        float loss = model.Forward(tokens, targets, B, T);
        model.Backward();
        float expected = golden.GetProperty("loss").GetSingle();
        Assert.True(Math.Abs(loss - expected) <= 1e-4 * expected, $"loss {loss} vs PyTorch {expected}");
        var grads = ReadSafetensors(Path.Combine(dir, "grads.safetensors"));
        foreach (var p in model.Parameters)
        {
            var reference = grads[p.Name];
            var mine = model.Grad(p.Name);
            float scale = reference.Max(Math.Abs);
            Assert.True(scale > 0, $"{p.Name}: zero reference gradient");
            float worst = 0;
            for (int i = 0; i < reference.Length; i++) worst = Math.Max(worst, Math.Abs(mine[i] - reference[i]));
            Assert.True(worst <= 1e-4f * scale, $"{name} {p.Name}: max |Δgrad| {worst:G3} > 1e-4 × {scale:G3}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TenAdamWStepsMatchPyTorch(string name)
    {
        var (model, golden, _) = Load(name);
        int B = golden.GetProperty("batch").GetInt32(), T = golden.GetProperty("seq_len").GetInt32();
        var a = golden.GetProperty("adam");
        var steps = golden.GetProperty("steps").EnumerateArray().ToArray();
        var options = new TrainerOptions
        {
            Steps = steps.Length,
            LearningRate = a.GetProperty("lr").GetSingle(),
            MinLrFraction = a.GetProperty("min_lr_fraction").GetSingle(),
            WarmupSteps = a.GetProperty("warmup").GetInt32(),
            Schedule = LrSchedule.Cosine,
            GradClip = a.GetProperty("clip").GetDouble(),
        };
        var adam = new AdamW(model.ParameterCount)
        {
            Beta1 = a.GetProperty("beta1").GetSingle(),
            Beta2 = a.GetProperty("beta2").GetSingle(),
            Eps = a.GetProperty("eps").GetSingle(),
            WeightDecay = a.GetProperty("weight_decay").GetSingle(),
        };
        for (int s = 1; s <= steps.Length; s++)
        {
            var (tokens, targets) = Batch(steps[s - 1]);
            model.ZeroGrad();
            float loss = model.Forward(tokens, targets, B, T);
            model.Backward();
            double norm = AdamW.GlobalNorm(model.Grads);
            AdamW.ClipGradients(model.Grads, norm, options.GradClip);
            float lr = options.LearningRateAt(s);
            Assert.Equal(steps[s - 1].GetProperty("lr").GetDouble(), lr, 1e-7);
            Assert.Equal(steps[s - 1].GetProperty("grad_norm").GetDouble(), norm, 1e-4 * norm);
            float expected = steps[s - 1].GetProperty("loss").GetSingle();
            Assert.True(Math.Abs(loss - expected) <= 1e-4 * expected, $"{name} step {s}: loss {loss} vs PyTorch {expected}");
            adam.Step(model.Params, model.Grads, model.Parameters, lr, s);
        }
    }
}
