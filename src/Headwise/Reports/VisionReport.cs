using System.Globalization;
using Headwise.Analysis;
using Headwise.Analysis.Patterns;
using Headwise.Analysis.Vision;
using Headwise.Hooks;
using Headwise.Models;
using Headwise.Vision;

namespace Headwise.Reports;

/// <summary>
/// The report of a vision transformer on one image: the head grid coloured by the image scores (mean attention distance,
/// entropy, CLS attention, patch sink), every head's pattern (CLS first, then the patches), top-heads tables, each head's
/// CLS attention as a heat overlay on the image, the attention rollout overlay, and the pattern clusters (a table and each
/// cluster's prototype over the patch offsets) — docs/vision.md.
/// </summary>
public static class VisionReport
{
    public const string OverlaySection = "CLS attention on the image";
    public const string RolloutSection = "Attention rollout";
    public const string ClusterSection = "Pattern clusters";

    /// <summary>The section of a chosen patch's overlays (<c>queryPatch</c> of <see cref="Build"/>).</summary>
    public static string PatchSection(int row, int column) => $"Attention of patch {row},{column} on the image";

    /// <param name="queryPatch">also draw, per head, the attention of the patch in this (row, column) of the grid as an
    /// overlay, the query patch outlined (null: the CLS's only)</param>
    public static ReportData Build(TransformerModel model, ModelInput image, string imageName, ReportOptions options, int clusters = 4, int seed = 0,
        CancellationToken cancel = default, (int Row, int Column)? queryPatch = null)
    {
        var c = model.Config;
        var vision = c.Vision ?? throw new InvalidInputException("the vision report needs a vision model (ViT)");
        var px = image.Pixels ?? throw new InvalidInputException("the vision report needs an image (ModelInput.Image)");
        Action<HookSet>? hooks = options.Recipe is { } r ? h => r.AddHooks(h) : null;
        int rows = px.Height / vision.PatchSize, columns = px.Width / vision.PatchSize;
        var patterns = PatternAnalysis.RunImage(model, image, cancel, hooks);
        var scored = VisionHeads.Score(patterns, rows, columns);
        HeadScores Grid(string name, string definition, Func<VisionHeadScore, double> value) =>
            HeadScores.Create(name, definition, c.NLayers, c.NHeads, (l, h) => (float)value(scored.Single(s => s.Layer == l && s.Head == h)));
        HeadScores[] scores =
        [
            Grid("attention distance", "mean attention distance in patches: Σ_k a(q,k)·‖pos(q) − pos(k)‖ over patch keys (renormalised), mean over patch queries", s => s.Distance),
            Grid("entropy", "entropy of each query's attention row (nats), mean over every query", s => s.Entropy),
            Grid("CLS attention", "mean attention of the patch queries on the CLS", s => s.Cls),
            Grid("patch sink", "the most attention one patch draws: max over patch keys of the patch queries' mean attention on it", s => s.Sink),
        ];
        var tables = scores.Select(s => ReportBuilder.TopTable(s, options.TopK)).ToList();
        var images = new List<ReportImage>();
        int k = Math.Min(clusters, c.NLayers * c.NHeads);
        var clustered = PatternClustering.Run([patterns], rows, columns, k, seed);
        tables.Add(ClusterTable(clustered, seed));

        // overlays: each head's CLS row over the patch grid, then the rollout's
        var display = Display(px);
        for (int l = 0; l < c.NLayers; l++)
        {
            for (int h = 0; h < c.NHeads; h++)
            {
                cancel.ThrowIfCancellationRequested();
                var cls = patterns.Patterns[l][h].AsSpan(1, rows * columns); // row 0 (the CLS query), patch keys
                images.Add(new ReportImage(OverlaySection, $"{l}.{h}", $"head {l}.{h}: the CLS's attention on each patch (yellow = its largest), "
                    + $"{(100 * patterns.Patterns[l][h][0]).ToString("F0", CultureInfo.InvariantCulture)}% on itself", Png.Encode(Overlay(display, cls, rows, columns)), new HeadId(l, h)));
            }
        }
        if (queryPatch is var (qr, qc))
        {
            images.AddRange(PatchOverlays(patterns, display, rows, columns, qr, qc, cancel));
        }
        var rollout = AttentionRollout.Compute(patterns);
        images.Add(new ReportImage(RolloutSection, "rollout", "attention rollout (Abnar & Zuidema): the CLS's share from each patch through every layer",
            Png.Encode(Overlay(display, rollout.AsSpan(1, rows * columns), rows, columns))));
        int side = clustered.Side;
        for (int i = 0; i < clustered.K; i++)
        {
            var proto = clustered.Prototypes[i];
            images.Add(new ReportImage(ClusterSection, $"cluster {i}: {string.Join(", ", clustered.Members(i))}",
                $"prototype of cluster {i}: mean attention by offset (dy down, dx right; the query at the centre), CLS {proto[PatternClusters.ClsIndex]:F2}",
                Png.Encode(Heatmap.Render(proto.AsSpan(1), side, side, Math.Max(4, 96 / side), 0, Math.Max(1e-6f, proto[1..].Max())))));
        }

        var logits = model.Forward(image, Hooked(model, hooks))[..c.VocabSize];
        var facts = new List<KeyValuePair<string, string>>
        {
            new("model", options.ModelName ?? c.ModelType),
            new("type", $"{c.ModelType} ({c.Family} family), vision"),
            new("parameters", c.ParameterCount.ToString("N0", CultureInfo.InvariantCulture)),
            new("layers", c.NLayers.ToString(CultureInfo.InvariantCulture)),
            new("heads", c.NHeads.ToString(CultureInfo.InvariantCulture)),
            new("widths", $"d_model {c.DModel}, d_head {c.DHead}, d_mlp {c.DMlp}"),
            new("image", $"{imageName}: {px.Height}×{px.Width} px after preprocessing, {rows}×{columns} patches of {vision.PatchSize} px + CLS"),
        };
        if (vision.HasClassifier)
        {
            var top = Classification.Top(logits, vision, 1)[0];
            facts.Add(new("prediction", $"{top.Label} ({top.Probability.ToString("P1", CultureInfo.InvariantCulture)})"));
        }
        var recipe = options.Recipe is { } applied ? ReportRecipe.Of(applied.Recipe) : null;
        if (recipe is not null)
        {
            facts.Insert(1, new("recipe", $"{recipe.Name} ({recipe.File}): every number in this report is computed under it"));
        }
        string[] notes =
        [
            $"Scores, patterns and overlays are on {imageName}. Patterns: position 0 is the CLS, 1 + r·{columns} + c the patch in row r, column c.",
            $"Pattern clusters: k-means (k = {k}, seed {seed}) on each head's mean attention by patch offset and on the CLS.",
            "Overlays show the preprocessed image, each channel stretched to its own range.",
        ];
        string title = $"Headwise report: {options.ModelName ?? c.ModelType} on {imageName}";
        return new ReportData(new ReportInfo(title, c.NLayers, c.NHeads, facts), scores, patterns, tables, notes)
        {
            Recipe = recipe,
            Images = images,
            Bidirectional = true,
        };
    }

    private static HookSet? Hooked(TransformerModel model, Action<HookSet>? hooks)
    {
        if (hooks is null)
        {
            return null;
        }
        var set = new HookSet(model.Config.NLayers);
        hooks(set);
        return set;
    }

    private static ReportTable ClusterTable(PatternClusters clusters, int seed)
    {
        int R = clusters.Radius;
        var rows = new List<IReadOnlyList<string>>();
        for (int i = 0; i < clusters.K; i++)
        {
            var proto = clusters.Prototypes[i];
            var strongest = Enumerable.Range(-R, 2 * R + 1).SelectMany(dy => Enumerable.Range(-R, 2 * R + 1).Select(dx => (dy, dx, w: proto[clusters.Index(dy, dx)])))
                .OrderByDescending(o => o.w).Take(3).Select(o => $"({o.dy},{o.dx}) {o.w.ToString("F2", CultureInfo.InvariantCulture)}");
            rows.Add([i.ToString(CultureInfo.InvariantCulture), string.Join(", ", clusters.Members(i)),
                proto[PatternClusters.ClsIndex].ToString("F2", CultureInfo.InvariantCulture), string.Join("  ", strongest)]);
        }
        return new ReportTable("Heads clustered by attention profile", $"k-means (seed {seed}) on each head's attention by relative patch offset "
            + "(dy, dx) and on the CLS, averaged over the patch queries; a cluster's prototype is its heads' mean profile (pictures below)",
            ["cluster", "heads", "CLS", "strongest offsets (dy,dx)"], rows, Section: ClusterSection);
    }

    /// <summary>The preprocessed image for display: each channel stretched to [0, 255] over its own range (grey for one
    /// channel), scaled up by a whole factor to at least 160 px on the longer side.</summary>
    public static RgbImage Display(ImagePixels px)
    {
        int ch = px.Channels, H = px.Height, W = px.Width, scale = Math.Max(1, 160 / Math.Max(H, W));
        var data = px.Data.AsSpan(0, ch * H * W); // (ch, H, W) of the first image
        var lo = new float[ch];
        var hi = new float[ch];
        for (int c = 0; c < ch; c++)
        {
            var plane = data.Slice(c * H * W, H * W);
            lo[c] = plane.ToArray().Min();
            hi[c] = plane.ToArray().Max();
        }
        var pixels = new byte[W * scale * H * scale * 3];
        for (int y = 0; y < H * scale; y++)
        {
            for (int x = 0; x < W * scale; x++)
            {
                for (int c = 0; c < 3; c++)
                {
                    int src = Math.Min(c, ch - 1);
                    float v = data[src * H * W + (y / scale) * W + x / scale];
                    pixels[(y * W * scale + x) * 3 + c] = (byte)Math.Clamp(255 * (v - lo[src]) / Math.Max(1e-6f, hi[src] - lo[src]), 0, 255);
                }
            }
        }
        return new RgbImage(W * scale, H * scale, pixels);
    }

    /// <summary>Per head, the attention of the patch in row <paramref name="row"/>, column <paramref name="column"/> over
    /// the image (<see cref="Overlay"/> of its pattern row's patch keys, the query patch outlined), in the section
    /// <see cref="PatchSection"/>; the caption gives its attention on the CLS.</summary>
    public static List<ReportImage> PatchOverlays(AttentionPatterns patterns, RgbImage display, int rows, int columns, int row, int column,
        CancellationToken cancel = default)
    {
        if (row < 0 || column < 0 || row >= rows || column >= columns)
        {
            throw new InvalidInputException($"query patch {row},{column} is outside the {rows}×{columns} patch grid");
        }
        int query = 1 + row * columns + column, T = 1 + rows * columns;
        var images = new List<ReportImage>();
        for (int l = 0; l < patterns.Layers; l++)
        {
            for (int h = 0; h < patterns.Heads; h++)
            {
                cancel.ThrowIfCancellationRequested();
                var weights = patterns.Patterns[l][h].AsSpan(query * T, T); // the query patch's row: CLS, then the patch keys
                var picture = Outline(Overlay(display, weights[1..], rows, columns), row * columns + column, rows, columns);
                images.Add(new ReportImage(PatchSection(row, column), $"{l}.{h} from {row},{column}", $"head {l}.{h}: the attention of patch "
                    + $"{row},{column} (outlined) on each patch (yellow = its largest), {(100 * weights[0]).ToString("F0", CultureInfo.InvariantCulture)}% on the CLS",
                    Png.Encode(picture), new HeadId(l, h)));
            }
        }
        return images;
    }

    /// <summary>A copy of <paramref name="image"/> with patch <paramref name="patch"/> (row-major over the grid) framed
    /// in white, one pixel wide (at least), so that the query of a patch overlay can be found.</summary>
    public static RgbImage Outline(RgbImage image, int patch, int rows, int columns)
    {
        var pixels = (byte[])image.Pixels.Clone();
        int r = patch / columns, c = patch % columns;
        int y0 = r * image.Height / rows, y1 = (r + 1) * image.Height / rows - 1, x0 = c * image.Width / columns, x1 = (c + 1) * image.Width / columns - 1;
        for (int y = y0; y <= y1; y++)
        {
            for (int x = x0; x <= x1; x++)
            {
                if (y == y0 || y == y1 || x == x0 || x == x1)
                {
                    pixels.AsSpan((y * image.Width + x) * 3, 3).Fill(255);
                }
            }
        }
        return new RgbImage(image.Width, image.Height, pixels);
    }

    /// <summary>A heat overlay: each pixel blended half and half with the viridis colour of its patch's weight, divided by the
    /// largest weight (so the most attended patch is yellow).</summary>
    public static RgbImage Overlay(RgbImage image, ReadOnlySpan<float> patchWeights, int rows, int columns)
    {
        float max = 1e-12f;
        foreach (float w in patchWeights)
        {
            max = Math.Max(max, w);
        }
        var pixels = new byte[image.Pixels.Length];
        for (int y = 0; y < image.Height; y++)
        {
            for (int x = 0; x < image.Width; x++)
            {
                int patch = (y * rows / image.Height) * columns + x * columns / image.Width;
                var (r, g, b) = Heatmap.Viridis(patchWeights[patch] / max);
                int i = (y * image.Width + x) * 3;
                pixels[i] = (byte)((image.Pixels[i] + r) / 2);
                pixels[i + 1] = (byte)((image.Pixels[i + 1] + g) / 2);
                pixels[i + 2] = (byte)((image.Pixels[i + 2] + b) / 2);
            }
        }
        return new RgbImage(image.Width, image.Height, pixels);
    }
}
