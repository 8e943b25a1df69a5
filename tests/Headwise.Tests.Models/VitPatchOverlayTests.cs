using Headwise.Analysis;
using Headwise.Analysis.Patterns;
using Headwise.Hooks;
using Headwise.Models;
using Headwise.Reports;
using Headwise.Vision;

namespace Headwise.Tests.Models;

/// <summary>A chosen patch's attention drawn over the image (VisionReport.PatchOverlays), known by construction: a head
/// built to attend to each patch's left neighbour puts the overlay's maximum on the chosen patch's left neighbour.</summary>
public class VitPatchOverlayTests
{
    private static string Dir => Path.Combine(TestPaths.Goldens, "vit_cls");

    [Fact]
    public void AHeadThatAttendsLeftHasItsOverlayMaximumOnTheLeftNeighbour()
    {
        using var loaded = ModelLoader.Load(Dir);
        var vision = loaded.Config.Vision!;
        var input = ModelInput.Image(ImagePreprocessor.ForModel(Dir, vision).Process(DecodedImage.Load(Path.Combine(Dir, "image.png"), vision.Channels)), vision);
        int T = input.SeqLen, G = vision.GridSize, L = loaded.Config.NLayers, NH = loaded.Config.NHeads;
        // head 1.2: every patch query reads its left neighbour (the right one in column 0), the CLS itself
        int Left(int q) => q == 0 ? 0 : (q - 1) % G == 0 ? q + 1 : q - 1;
        var patterns = PatternAnalysis.RunImage(loaded.Model, input, baseHooks: hooks => hooks.Add("blocks.1.attn.hook_pattern", a =>
        {
            var span = a.Data.Span.Slice(2 * T * T, T * T);
            span.Clear();
            for (int q = 0; q < T; q++) span[q * T + Left(q)] = 1;
        }));
        var display = VisionReport.Display(input.Pixels!);
        foreach (var (row, column) in new[] { (2, 2), (0, 3), (3, 1) })
        {
            var images = VisionReport.PatchOverlays(patterns, display, G, G, row, column);
            Assert.Equal(L * NH, images.Count);
            Assert.All(images, i => Assert.Equal(VisionReport.PatchSection(row, column), i.Section));
            var built = images.Single(i => i.Head == new HeadId(1, 2));
            // the weights drawn: the query patch's row over the patch keys, its largest on the left neighbour
            int query = 1 + row * G + column, left = row * G + column - 1;
            var weights = patterns.Patterns[1][2].AsSpan(query * T + 1, G * G).ToArray();
            Assert.Equal(left, Array.IndexOf(weights, weights.Max()));
            // the picture: that overlay, the query patch outlined; the left neighbour's cell is half viridis yellow (its
            // maximum), the other cells half viridis purple (zero)
            var overlay = VisionReport.Overlay(display, weights, G, G);
            Assert.Equal(Png.Encode(VisionReport.Outline(overlay, query - 1, G, G)), built.Png);
            int cell = display.Width / G, y = row * cell + cell / 2, x = (column - 1) * cell + cell / 2;
            var (dr, dg, db) = display[x, y]; // RgbImage's indexer is [x, y]
            Assert.Equal(((byte)((dr + 0xfd) / 2), (byte)((dg + 0xe7) / 2), (byte)((db + 0x25) / 2)), overlay[x, y]);
            int self = column * cell + cell / 2 + 1; // inside the query patch, off its outline
            var (pr, pg, pb) = display[self, y];
            Assert.Equal(((byte)((pr + 0x44) / 2), (byte)((pg + 0x01) / 2), (byte)((pb + 0x54) / 2)), overlay[self, y]);
        }
        Assert.Throws<InvalidInputException>(() => VisionReport.PatchOverlays(patterns, display, G, G, G, 0));
    }
}
