using Headwise.Generation;
using Headwise.Loading;

namespace Headwise.Tests.Models;

/// <summary>The real pretrained llama2.c model in ../shared: its published greedy output must come out token for token.</summary>
public class Stories260KTests
{
    // Published by the model's author (../shared/models/stories260K/README.md): greedy decoding from BOS begins with these ids.
    private static readonly int[] PublishedGreedy = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426];

    [Fact]
    public void GreedyFromBosReproducesPublishedIds()
    {
        string dir = TestPaths.RequireStories260K();
        using var loaded = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"));
        Assert.Equal("llama2c", loaded.Config.ModelType);
        Assert.Equal(5, loaded.Config.NLayers);
        Assert.Equal(4, loaded.Config.NKvHeads);
        var generated = Generator.Generate(loaded.Model, [1], new GenerationOptions { MaxNewTokens = PublishedGreedy.Length - 1 }).ToArray();
        int[] withBos = [1, .. generated];
        Assert.Equal(PublishedGreedy, withBos);
    }
}
