using Headwise.Analysis;
using Headwise.Analysis.Patterns;
using Headwise.Analysis.Vision;
using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;
using Headwise.Vision;

namespace Headwise.Tests.Models;

/// <summary>
/// The ViT family and its image preprocessing against dev/reference/make_vit_goldens.py: HF's ViTImageProcessor (PIL's
/// resize, rescale, normalise) and a PyTorch forward written from HF's modeling_vit.py. Pixels within 1e-6 — the resize
/// is PIL's own algorithm re-implemented (PilResize), so the uint8 image matches to the byte and only float rounding of the
/// rescale/normalise remains; logits, hidden states and patterns within 1e-4.
/// </summary>
public class VitTests(ITestOutputHelper output)
{
    private const double PixelTolerance = 1e-6;
    private const double Tolerance = 1e-4;

    public static TheoryData<string, string> Images() => new()
    {
        { "vit_cls", "resized" }, { "vit_cls", "exact" }, { "vit_cls", "gray" },
        { "vit_model", "resized" }, { "vit_model", "exact" }, { "vit_model", "gray" },
    };

    private static string Dir(string name) => Path.Combine(TestPaths.Goldens, name);

    private static ImagePixels Preprocess(string dir, string file, VisionConfig vision, out bool converted)
    {
        var image = DecodedImage.Load(Path.Combine(dir, file), vision.Channels);
        converted = image.ConvertedFromGray;
        return ImagePreprocessor.ForModel(dir, vision).Process(image);
    }

    private double MaxDiff(string what, ReadOnlySpan<float> got, float[] want, double tolerance)
    {
        Assert.Equal(want.Length, got.Length);
        double max = 0;
        for (int i = 0; i < want.Length; i++)
        {
            max = Math.Max(max, Math.Abs(got[i] - want[i]));
        }
        output.WriteLine($"{what}: max |Δ| = {max:E2} (tolerance {tolerance:E0}) {(max <= tolerance ? "OK" : "NOT OK")}");
        Assert.True(max <= tolerance, $"{what}: max |Δ| = {max:E2} > {tolerance:E0}");
        return max;
    }

    // the checked output: a classifier's logits at the CLS (HF's logits), or a ViTModel's whole last_hidden_state
    private static float[] Output(TransformerModel model, float[] logits, int T) =>
        model.Config.Vision!.HasClassifier ? logits[..model.Config.VocabSize] : logits[..(T * model.Config.VocabSize)];

    [Theory]
    [MemberData(nameof(Images))]
    public void PixelsAndOutputsMatchReference(string name, string image)
    {
        string dir = Dir(name);
        using var expected = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        using var loaded = ModelLoader.Load(dir);
        var vision = loaded.Config.Vision!;
        string file = image switch { "resized" => "image.png", "exact" => "image_exact.png", _ => "image_gray.png" };
        var pixels = Preprocess(dir, file, vision, out bool converted);
        Assert.Equal(image == "gray", converted);
        MaxDiff($"{name}/{image} pixels", pixels.Data, GoldenTests.ReadF32(expected, $"pixels_{image}"), PixelTolerance);

        var input = ModelInput.Image(pixels, vision);
        var logits = loaded.Model.Forward(input);
        string outName = vision.HasClassifier ? "logits" : "hidden";
        MaxDiff($"{name}/{image} {outName}", Output(loaded.Model, logits, input.SeqLen), GoldenTests.ReadF32(expected, $"{outName}_{image}"), Tolerance);
    }

    [Theory]
    [InlineData(ResampleFilter.Lanczos)]
    [InlineData(ResampleFilter.Bicubic)]
    [InlineData(ResampleFilter.Box)]
    [InlineData(ResampleFilter.Hamming)]
    public void EveryPilFilterMatchesPil(ResampleFilter filter)
    {
        string dir = Dir("vit_cls");
        using var expected = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        var vision = new VisionConfig(32, 8, 3, []);
        var processor = ImagePreprocessor.ForModel(dir, vision) with { Resample = filter };
        var pixels = processor.Process(DecodedImage.Load(Path.Combine(dir, "image.png"), 3));
        MaxDiff($"{filter} pixels", pixels.Data, GoldenTests.ReadF32(expected, $"pixels_filter{(int)filter}"), PixelTolerance);
    }

    [Theory]
    [InlineData("vit_cls")]
    [InlineData("vit_model")]
    public void PatternMatchesReferenceWithTheClsFirst(string name)
    {
        string dir = Dir(name);
        using var expected = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        using var loaded = ModelLoader.Load(dir);
        var input = ModelInput.Image(Preprocess(dir, "image.png", loaded.Config.Vision!, out _), loaded.Config.Vision!);
        var (_, cache) = loaded.Model.RunWithCache(input, n => n == "blocks.0.attn.hook_pattern");
        var pattern = cache["blocks.0.attn.hook_pattern"];
        Assert.Equal([1, loaded.Config.NHeads, input.SeqLen, input.SeqLen], pattern.Shape);
        MaxDiff($"{name} layer-0 pattern", pattern.Data, GoldenTests.ReadF32(expected, "pattern0_resized"), Tolerance);
    }

    [Theory]
    [InlineData("vit_cls")]
    [InlineData("vit_model")]
    public void PositionsInterpolateToAnotherSizeAsHfDoes(string name)
    {
        string dir = Dir(name);
        using var expected = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        using var loaded = ModelLoader.Load(dir);
        var vision = loaded.Config.Vision!;
        var entry = expected.Tensors["interp_pixels"];
        int H = (int)entry.Shape[2], W = (int)entry.Shape[3];
        var pixels = new ImagePixels(GoldenTests.ReadF32(expected, "interp_pixels"), 1, 3, H, W);
        var vit = Assert.IsType<Vit>(loaded.Model);
        MaxDiff($"{name} positions at {H}×{W}", vit.PositionEmbeddingFor(H, W), GoldenTests.ReadF32(expected, "interp_pos"), 1e-5);

        var input = ModelInput.Image(pixels, vision);
        Assert.Equal(1 + H / vision.PatchSize * (W / vision.PatchSize), input.SeqLen);
        var (logits, cache) = loaded.Model.RunWithCache(input, n => n == "blocks.0.attn.hook_pattern");
        string outName = vision.HasClassifier ? "logits" : "hidden";
        MaxDiff($"{name} {outName} at {H}×{W}", Output(loaded.Model, logits, input.SeqLen), GoldenTests.ReadF32(expected, $"{outName}_interp"), Tolerance);
        MaxDiff($"{name} pattern at {H}×{W}", cache["blocks.0.attn.hook_pattern"].Data, GoldenTests.ReadF32(expected, "pattern0_interp"), Tolerance);
    }

    [Fact]
    public void HooksHaveTransformerLensNamesAndShapes()
    {
        string dir = Dir("vit_cls");
        using var loaded = ModelLoader.Load(dir);
        var c = loaded.Config;
        var input = ModelInput.Image(Preprocess(dir, "image.png", c.Vision!, out _), c.Vision!);
        int T = input.SeqLen;
        var (_, cache) = loaded.Model.RunWithCache(input);
        Assert.Equal([1, T, c.DModel], cache["hook_embed"].Shape);
        Assert.Equal([1, T, c.DModel], cache["hook_pos_embed"].Shape);
        Assert.Equal([1, T, c.NHeads, c.DHead], cache["blocks.1.attn.hook_q"].Shape);
        Assert.Equal([1, T, c.NHeads, c.DHead], cache["blocks.1.attn.hook_z"].Shape);
        Assert.Equal([1, c.NHeads, T, T], cache["blocks.1.attn.hook_attn_scores"].Shape);
        // resid_pre of block 0 = patch/CLS embedding + position embedding
        var embed = cache["hook_embed"].Data;
        var pos = cache["hook_pos_embed"].Data;
        var resid = cache["blocks.0.hook_resid_pre"].Data;
        for (int i = 0; i < resid.Length; i++)
        {
            Assert.Equal(embed[i] + pos[i], resid[i], 1e-6);
        }
        // bidirectional: the CLS (query 0) attends to the last patch, which a causal mask would hide
        var pattern = cache["blocks.0.attn.hook_pattern"].Data;
        Assert.True(pattern[T - 1] > 0);
    }

    [Fact]
    public void AHeadOnItsLeftNeighbourHasDistanceOneAndRanksFirstAndACLSHeadIsFound()
    {
        // known by construction: head 1.2's pattern is set to "the patch to the left" (the right one in column 0: also 1
        // patch away; the CLS query reads itself), head 0.1's to "the CLS only"
        string dir = Dir("vit_cls");
        using var loaded = ModelLoader.Load(dir);
        var vision = loaded.Config.Vision!;
        var input = ModelInput.Image(Preprocess(dir, "image.png", vision, out _), vision);
        int T = input.SeqLen, G = vision.GridSize;
        void Set(ActivationView a, int head, Func<int, int> key)
        {
            var span = a.Data.Span.Slice(head * T * T, T * T); // [batch 1, head, q, k]
            span.Clear();
            for (int q = 0; q < T; q++)
            {
                span[q * T + key(q)] = 1;
            }
        }
        int LeftNeighbour(int q) => q == 0 ? 0 : (q - 1) % G == 0 ? q + 1 : q - 1;
        var p = PatternAnalysis.RunImage(loaded.Model, input, baseHooks: hooks =>
        {
            hooks.Add("blocks.1.attn.hook_pattern", a => Set(a, 2, LeftNeighbour));
            hooks.Add("blocks.0.attn.hook_pattern", a => Set(a, 1, _ => 0));
        });
        var scores = VisionHeads.Score(p, G, G);
        Assert.Equal(new HeadId(1, 2), scores[0].Id);
        Assert.Equal(1.0, scores[0].Distance, 1e-12);
        Assert.Equal(0.0, scores[0].Entropy, 1e-12);
        var clsHead = scores.Single(s => s.Id == new HeadId(0, 1));
        Assert.Equal(1.0, clsHead.Cls, 1e-12);
        Assert.True(double.IsNaN(clsHead.Distance)); // no patch attended: no distance, ranked last
        Assert.Equal(clsHead, scores[^1]);
        Assert.Equal(clsHead, scores.MaxBy(s => s.Cls));
    }

    [Fact]
    public void ViTModelHasNoClassifierAndIgnoresThePooler()
    {
        using var loaded = ModelLoader.Load(Dir("vit_model"));
        Assert.False(loaded.Config.Vision!.HasClassifier);
        Assert.Equal(loaded.Config.DModel, loaded.Config.VocabSize);
        Assert.Contains("pooler.dense.weight", loaded.Model.Weights.Names);
    }

    [Fact]
    public void BadImagesAreRefusedNamingTheFile()
    {
        string file = Path.Combine(Dir("vit_cls"), "image_truncated.png");
        var e = Assert.Throws<InvalidInputException>(() => DecodedImage.Load(file, 3));
        Assert.Contains("image_truncated.png", e.Message);
        string notImage = Path.Combine(Dir("vit_cls"), "config.json");
        e = Assert.Throws<InvalidInputException>(() => DecodedImage.Load(notImage, 3));
        Assert.Contains("config.json", e.Message);
    }

    [Fact]
    public void SizesThatAreNotWholePatchesAndTokenIdsAreRefused()
    {
        using var loaded = ModelLoader.Load(Dir("vit_cls"));
        var vision = loaded.Config.Vision!;
        var e = Assert.Throws<InvalidInputException>(() => ModelInput.Image(new ImagePixels(new float[3 * 30 * 32], 1, 3, 30, 32), vision));
        Assert.Contains("cannot be interpolated", e.Message);
        Assert.Throws<InvalidInputException>(() => ModelInput.Image(new ImagePixels(new float[32 * 32], 1, 1, 32, 32), vision));
        e = Assert.Throws<InvalidInputException>(() => loaded.Model.Forward(ModelInput.Single(0, 1)));
        Assert.Contains("reads images", e.Message);
    }

    [Fact]
    public void PilResizeKeepsAConstantImageAndAveragesWhenDownscaling()
    {
        // known by construction: a constant image stays constant under every filter; 4 → 1 pixel bilinear averages the
        // middle pixels more (triangle of half-width 2 centred at 2.0: weights 1, 3, 3, 1 over the 4 pixels, /8)
        foreach (var f in Enum.GetValues<ResampleFilter>())
        {
            var constant = PilResize.Resize(Enumerable.Repeat((byte)77, 5 * 7).ToArray(), 5, 7, 1, 3, 11, f);
            Assert.All(constant, b => Assert.Equal(77, b));
        }
        var mean = PilResize.Resize(new byte[] { 0, 80, 160, 240 }, 1, 4, 1, 1, 1, ResampleFilter.Bilinear);
        Assert.Equal((byte)Math.Round((0 * 1 + 80 * 3 + 160 * 3 + 240 * 1) / 8.0), mean[0]);
    }
}
