using Headwise.Models;
using Headwise.Training;

namespace Headwise.Tests.Unit.Training;

/// <summary>train-demo --insert-layer: a fresh block with zero output projections changes nothing the model computes.</summary>
public class InsertedLayerTests
{
    private static string DemoDir => Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "models", "demo");

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(4)]
    public void AFreshLayerWithZeroOutputProjectionsLeavesTheLogitsAsTheyWere(int at)
    {
        using var loaded = ModelLoader.Load(DemoDir);
        var weights = loaded.Model.ToCanonical();
        var grown = DemoModel.WithInsertedLayer(weights, at, seed: 1);
        Assert.Equal(weights.Config.NLayers + 1, grown.Config.NLayers);
        Assert.Contains(grown.Layers[at].Attention.WQ, x => x != 0); // the new heads are not blank: they can learn
        Assert.All(grown.Layers[at].Attention.WO, x => Assert.Equal(0f, x));
        using var model = TransformerModel.Create(grown, "grown");
        int[] tokens = [4096, 17, 230, 1021, 88, 17, 230, 1021, 3000, 5];
        var before = loaded.Model.Forward(ModelInput.Single(tokens));
        var after = model.Forward(ModelInput.Single(tokens));
        Assert.Equal(before.Length, after.Length);
        for (int i = 0; i < before.Length; i++)
        {
            Assert.Equal(before[i], after[i], 1e-6f);
        }
    }

    [Fact]
    public void AnIndexOutsideTheLayersIsRefusedByName()
    {
        using var loaded = ModelLoader.Load(DemoDir);
        var e = Assert.Throws<InvalidInputException>(() => DemoModel.WithInsertedLayer(loaded.Model.ToCanonical(), 5));
        Assert.Contains("--insert-layer 5", e.Message);
        Assert.Contains("0 to 4", e.Message);
    }
}
