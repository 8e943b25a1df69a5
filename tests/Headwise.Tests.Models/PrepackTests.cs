using System.Text.Json;
using Headwise.Models;

namespace Headwise.Tests.Models;

/// <summary>Prepacked weights (<see cref="TransformerModel.Prepack"/>) against the GEMM packing on every call, on every
/// golden family: the same sums in the same order, so the logits must be bitwise the same.</summary>
public class PrepackTests
{
    public static TheoryData<string> Cases() => GoldenTests.Cases();

    [Theory]
    [MemberData(nameof(Cases))]
    public void PrepackedLogitsAreBitwiseTheUnpacked(string caseName)
    {
        string dir = Path.Combine(TestPaths.Goldens, caseName);
        using var golden = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "golden.json")));
        using var loaded = ModelLoader.Load(dir);
        var model = loaded.Model;
        var inputs = new List<ModelInput>();
        foreach (var s in golden.RootElement.GetProperty("scenarios").EnumerateArray())
        {
            var ids = s.GetProperty("input_ids").Deserialize<int[][]>()!;
            var mask = s.GetProperty("attention_mask").Deserialize<int[][]>()!;
            inputs.Add(new ModelInput(ids.SelectMany(r => r).ToArray(), ids.Length, ids[0].Length, mask.SelectMany(r => r).Select(m => (byte)m).ToArray()));
        }
        // and one input large enough for the GEMM (more than 8 rows) whatever the scenarios are
        var rng = new Random(5);
        int T = Math.Min(model.Config.MaxPositions, 24);
        inputs.Add(new ModelInput(Enumerable.Range(0, 3 * T).Select(_ => rng.Next(model.Config.VocabSize)).ToArray(), 3, T));

        model.Prepack = false;
        var unpacked = inputs.Select(i => model.Forward(i)).ToArray();
        Assert.Equal(0, model.PackedWeightBytes);
        model.Prepack = true;
        var packed = inputs.Select(i => model.Forward(i)).ToArray();
        Assert.True(model.PackedWeightBytes > 0, "no weight was packed");
        for (int k = 0; k < inputs.Count; k++)
        {
            Assert.Equal(unpacked[k].Length, packed[k].Length);
            for (int i = 0; i < packed[k].Length; i++)
            {
                if (BitConverter.SingleToInt32Bits(unpacked[k][i]) != BitConverter.SingleToInt32Bits(packed[k][i]))
                {
                    Assert.Fail($"{caseName} input {k}: logit [{i}] is {packed[k][i]:R} prepacked, {unpacked[k][i]:R} unpacked");
                }
            }
        }
    }

    /// <summary>What <c>info</c> reports without packing — the bytes counted from the weights' shapes — is what packing
    /// then makes, on every golden family (ViTs included), and counting packs nothing.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void PlannedPackBytesAreWhatPackingMakes(string caseName)
    {
        using var loaded = ModelLoader.Load(Path.Combine(TestPaths.Goldens, caseName));
        var model = loaded.Model;
        model.Prepack = true;
        long planned = model.PlannedPackBytes();
        Assert.Equal(0, model.PackedWeightBytes);
        Assert.True(planned > 0, $"{caseName}: no weight counted");
        Assert.Equal(planned, model.PrepackWeights());
        Assert.Equal(planned, model.PlannedPackBytes()); // already packed weights count the same
    }
}
