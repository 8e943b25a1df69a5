using System.Text.Json;
using Headwise.Loading;
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

    /// <summary>An F16 and a BF16 checkpoint (written here from the F32 goldens of two families): prepacked, every linear
    /// weight is packed straight from its half-precision bits and never converted to float32 — the logits bitwise those of
    /// the weights converted first and then packed, and the resident float32 bytes lower by the linear weights.</summary>
    [Theory]
    [InlineData("gpt2_tied", TensorDType.F16)]
    [InlineData("gpt2_tied", TensorDType.BF16)]
    [InlineData("llama_mha", TensorDType.F16)]
    [InlineData("llama_mha", TensorDType.BF16)]
    public void HalfPrecisionWeightsArePackedFromTheirBits(string golden, TensorDType dtype)
    {
        string dir = Path.Combine(Path.GetTempPath(), "hw-half-pack-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using (var source = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden)))
            {
                source.Model.ToCanonical().SaveHf(dir, dtype);
            }
            // converted, then packed: every weight read as float32 before the first prefill
            using var converted = ModelLoader.Load(dir);
            var rng = new Random(9);
            var input = new ModelInput(Enumerable.Range(0, 2 * 12).Select(_ => rng.Next(converted.Config.VocabSize)).ToArray(), 2, 12);
            foreach (var name in converted.Model.Weights.Names)
            {
                _ = converted.Model.Weights.GetAnyShape(name).Span;
            }
            converted.Model.Prepack = true;
            var want = converted.Model.Forward(input);
            long convertedBytes = converted.Model.Weights.ConvertedBytes;

            // packed from the bits
            using var fromBits = ModelLoader.Load(dir);
            fromBits.Model.Prepack = true;
            var got = fromBits.Model.Forward(input);
            long residentBytes = fromBits.Model.Weights.ConvertedBytes;
            Assert.True(fromBits.Model.PackedWeightBytes > 0, "no weight was packed");
            Assert.Equal(want.Length, got.Length);
            for (int i = 0; i < want.Length; i++)
            {
                if (BitConverter.SingleToInt32Bits(want[i]) != BitConverter.SingleToInt32Bits(got[i]))
                {
                    Assert.Fail($"{golden} {dtype}: logit [{i}] is {got[i]:R} packed from the bits, {want[i]:R} converted then packed");
                }
            }
            // only what is not a linear weight is converted (norms, biases); the packed linear weights are not
            Assert.True(residentBytes * 4 < convertedBytes,
                $"{golden} {dtype}: {residentBytes} bytes converted packing from the bits, {convertedBytes} converting first");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Decode steps stream the packed panels (the packed GEMV, AVX-512 machines): an F16/BF16 checkpoint that only
    /// ever decodes — a one-token prompt, then one token at a time, so no prefill packs anything — converts no linear weight
    /// to float32 (no more bytes than a prefill converts: the norms and biases), and each step's logits are bitwise the
    /// prefill's row at that position (the packed GEMV sums as the GEMM does; the attention's decode path as its tiles).</summary>
    [Theory]
    [InlineData("gpt2_tied", TensorDType.F16)]
    [InlineData("llama_mha", TensorDType.BF16)]
    public void DecodingAHalfPrecisionCheckpointConvertsNoLinearWeight(string golden, TensorDType dtype)
    {
        Assert.SkipUnless(Headwise.Compute.Kernels.PackedGemvSupported, "the packed GEMV needs AVX-512; elsewhere decode converts, as documented");
        string dir = Path.Combine(Path.GetTempPath(), "hw-half-decode-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using (var source = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden)))
            {
                source.Model.ToCanonical().SaveHf(dir, dtype);
            }
            using var prefill = ModelLoader.Load(dir);
            prefill.Model.Prepack = true;
            var rng = new Random(17);
            int T = Math.Min(prefill.Config.MaxPositions, 12), V = prefill.Config.VocabSize;
            int[] tokens = Enumerable.Range(0, T).Select(_ => rng.Next(V)).ToArray();
            float[] rows = prefill.Model.Forward(ModelInput.Single(tokens));
            long prefillConverted = prefill.Model.Weights.ConvertedBytes;

            using var decode = ModelLoader.Load(dir);
            decode.Model.Prepack = true;
            decode.Model.ResetCache(1, T);
            for (int t = 0; t < T; t++)
            {
                float[] step = decode.Model.ForwardChunk([tokens[t]], null, 1, null, lastOnly: true);
                for (int i = 0; i < V; i++)
                {
                    if (BitConverter.SingleToInt32Bits(step[i]) != BitConverter.SingleToInt32Bits(rows[(long)t * V + i]))
                    {
                        Assert.Fail($"{golden} {dtype}: decode step {t}, logit [{i}] is {step[i]:R}, the prefill's row {rows[(long)t * V + i]:R}");
                    }
                }
            }
            Assert.True(decode.Model.PackedWeightBytes > 0, "decoding packed nothing");
            Assert.True(decode.Model.Weights.ConvertedBytes <= prefillConverted,
                $"{golden} {dtype}: decoding converted {decode.Model.Weights.ConvertedBytes} bytes to float32, a prefill {prefillConverted}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>An F32 model that only ever decodes (a one-token prompt, then one token at a time: no prefill packs
    /// anything) streams its nn.Linear (out, in) weights from panels packed on the first decode step — the (out, in) GEMV
    /// is the slower layout — and its Conv1D (in, out) weights as stored. Llama (every projection and lm_head nn.Linear):
    /// every step's logits are bitwise the prefill's row at that position, which the (out, in) GEMV's sums are not. GPT-2
    /// (Conv1D projections, the tied unembedding W_E (V, C)): exactly the unembedding is packed.</summary>
    [Theory]
    [InlineData("llama_mha")]
    [InlineData("gpt2_tied")]
    public void DecodingAnF32ModelPacksItsOutInWeights(string golden)
    {
        Assert.SkipUnless(Headwise.Compute.Kernels.PackedGemvSupported, "the packed GEMV needs AVX-512; elsewhere decode streams the weights as stored");
        using var prefill = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        prefill.Model.Prepack = true;
        var rng = new Random(19);
        int T = Math.Min(prefill.Config.MaxPositions, 12), V = prefill.Config.VocabSize, C = prefill.Config.DModel;
        int[] tokens = Enumerable.Range(0, T).Select(_ => rng.Next(V)).ToArray();
        float[] rows = prefill.Model.Forward(ModelInput.Single(tokens));

        using var decode = ModelLoader.Load(Path.Combine(TestPaths.Goldens, golden));
        decode.Model.Prepack = true;
        decode.Model.ResetCache(1, T);
        int differing = 0;
        for (int t = 0; t < T; t++)
        {
            float[] step = decode.Model.ForwardChunk([tokens[t]], null, 1, null, lastOnly: true);
            for (int i = 0; i < V; i++)
            {
                if (BitConverter.SingleToInt32Bits(step[i]) != BitConverter.SingleToInt32Bits(rows[(long)t * V + i])) differing++;
            }
        }
        if (golden.StartsWith("llama", StringComparison.Ordinal))
        {
            Assert.True(differing == 0, $"{golden}: {differing} decode logits differ from the prefill's rows");
            Assert.Equal(prefill.Model.PackedWeightBytes, decode.Model.PackedWeightBytes); // every linear weight, as a prefill packs
        }
        else
        {
            Assert.Equal(Headwise.Compute.Kernels.PackedWeightBytes(C, V), decode.Model.PackedWeightBytes);
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
