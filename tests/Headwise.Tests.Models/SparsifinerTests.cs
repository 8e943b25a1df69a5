using Headwise.Analysis.Vision;
using Headwise.Hooks;
using Headwise.Models;
using Headwise.Vision;

namespace Headwise.Tests.Models;

/// <summary>
/// Sparsifiner-style attention on the tiny ViT golden (tests/goldens/vit_cls: 2 layers × 4 heads of size 8, 17 tokens):
/// dense when every key is kept, and at full rank the keys it keeps are each query's top-K by the exact score.
/// </summary>
public class SparsifinerTests
{
    private static string Dir => Path.Combine(TestPaths.Goldens, "vit_cls");

    private static ModelInput Input(LoadedModel loaded)
    {
        var vision = loaded.Config.Vision!;
        return ModelInput.Image(ImagePreprocessor.ForModel(Dir, vision).Process(DecodedImage.Load(Path.Combine(Dir, "image.png"), vision.Channels)), vision);
    }

    [Fact]
    public void EveryKeyKeptIsTheDenseModel()
    {
        using var loaded = ModelLoader.Load(Dir);
        var input = Input(loaded);
        int T = loaded.Config.Vision!.SequenceLength, L = loaded.Config.NLayers;
        var dense = loaded.Model.Forward(input);
        // K = T: nothing is installed, so the forward is the dense one bit for bit
        var all = new Sparsifiner(loaded.Model, new SparsifinerPlan(T, 2));
        var hooks = new HookSet(L);
        all.Install(hooks, T);
        Assert.False(hooks.Any);
        Assert.Equal(dense, loaded.Model.Forward(input, hooks));
        // the hooks forced on (as if the sequence were longer) with every key selected: the same logits through the
        // hooked path (scores, softmax, apply as separate passes)
        var forced = new HookSet(L);
        all.Install(forced, T + 1);
        Assert.True(forced.Any);
        var hooked = loaded.Model.Forward(input, forced);
        for (int i = 0; i < dense.Length; i++) Assert.Equal(dense[i], hooked[i], 1e-5f);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(12)]
    public void AtFullRankTheKeptKeysAreTheTopKByExactScore(int keys)
    {
        using var loaded = ModelLoader.Load(Dir);
        var input = Input(loaded);
        int T = loaded.Config.Vision!.SequenceLength, L = loaded.Config.NLayers, NH = loaded.Config.NHeads, HD = loaded.Config.DHead;
        var sparse = new Sparsifiner(loaded.Model, new SparsifinerPlan(keys, HD));
        var exact = new float[L][];
        var pattern = new float[L][];
        var hooks = new HookSet(L);
        for (int l = 0; l < L; l++)
        {
            int layer = l;
            // added before the mask: sees the exact scores
            hooks.Add(new HookPoint(layer, HookKind.AttnScores), a => exact[layer] = a.Data.ToArray());
        }
        sparse.Install(hooks, T);
        for (int l = 0; l < L; l++)
        {
            int layer = l;
            hooks.Add(new HookPoint(layer, HookKind.Pattern), a => pattern[layer] = a.Data.ToArray(), observeOnly: true);
        }
        loaded.Model.Forward(input, hooks);
        for (int l = 0; l < L; l++)
        {
            for (int row = 0; row < NH * T; row++)
            {
                var s = exact[l].AsSpan(row * T, T).ToArray();
                var p = pattern[l].AsSpan(row * T, T).ToArray();
                var top = Enumerable.Range(0, T).OrderByDescending(j => s[j]).Take(keys).Order().ToArray();
                var kept = Enumerable.Range(0, T).Where(j => p[j] > 0).ToArray();
                Assert.Equal(top, kept);
                Assert.Equal(1.0, p.Sum(), 1e-5);
            }
        }
    }

    [Theory]
    [InlineData(1, 2)]
    [InlineData(5, 2)]
    [InlineData(8, 8)]
    [InlineData(12, 4)]
    public void TheGatheredPathEqualsTheHookedReference(int keys, int rank)
    {
        using var loaded = ModelLoader.Load(Dir);
        var model = loaded.Model;
        var input = Input(loaded);
        int T = loaded.Config.Vision!.SequenceLength, L = loaded.Config.NLayers;
        var sparse = new Sparsifiner(model, new SparsifinerPlan(keys, rank));
        var hooks = new HookSet(L);
        sparse.Install(hooks, T);
        var reference = model.Forward(input, hooks);
        model.KeySelection = sparse;
        try
        {
            // the same keys chosen (one Select), only those computed: the same logits within float rounding
            var fast = model.Forward(input);
            for (int i = 0; i < reference.Length; i++) Assert.Equal(reference[i], fast[i], 1e-5f);
            // observed, the masked three passes: the pattern's nonzero keys are the reference's, and the logits agree
            var observedPatterns = new float[L][];
            var referencePatterns = new float[L][];
            var observe = new HookSet(L);
            var both = new HookSet(L);
            sparse.Install(both, T);
            for (int l = 0; l < L; l++)
            {
                int layer = l;
                observe.Add(new HookPoint(layer, HookKind.Pattern), a => observedPatterns[layer] = a.Data.ToArray(), observeOnly: true);
                both.Add(new HookPoint(layer, HookKind.Pattern), a => referencePatterns[layer] = a.Data.ToArray(), observeOnly: true);
            }
            var observed = model.Forward(input, observe);
            for (int i = 0; i < reference.Length; i++) Assert.Equal(reference[i], observed[i], 1e-5f);
            model.KeySelection = null;
            model.Forward(input, both);
            for (int l = 0; l < L; l++)
            {
                Assert.Equal(referencePatterns[l].Select(p => p > 0), observedPatterns[l].Select(p => p > 0));
                Assert.Equal(keys * loaded.Config.NHeads * T, observedPatterns[l].Count(p => p > 0));
            }
        }
        finally
        {
            model.KeySelection = null;
        }
    }

    [Fact]
    public void GatheredWithEveryKeyIsTheDenseModelExactly()
    {
        using var loaded = ModelLoader.Load(Dir);
        var input = Input(loaded);
        int T = loaded.Config.Vision!.SequenceLength;
        var dense = loaded.Model.Forward(input);
        loaded.Model.KeySelection = new Sparsifiner(loaded.Model, new SparsifinerPlan(T, 2));
        Assert.Equal(dense, loaded.Model.Forward(input));
        loaded.Model.KeySelection = new Sparsifiner(loaded.Model, new SparsifinerPlan(T + 5, 2));
        Assert.Equal(dense, loaded.Model.Forward(input));
    }

    [Fact]
    public void BadPlansAreRefused()
    {
        using var loaded = ModelLoader.Load(Dir);
        Assert.Throws<InvalidInputException>(() => new Sparsifiner(loaded.Model, new SparsifinerPlan(0, 2)));
        Assert.Throws<InvalidInputException>(() => new Sparsifiner(loaded.Model, new SparsifinerPlan(4, loaded.Config.DHead + 1)));
    }
}
