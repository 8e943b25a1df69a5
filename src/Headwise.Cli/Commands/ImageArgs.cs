using Headwise.Models;
using Headwise.Vision;

namespace Headwise.Cli.Commands;

/// <summary>The images of a vision command: --image FILE or --image-dir DIR (PNG/JPEG), preprocessed as the model's
/// preprocessor_config.json says (docs/vision.md).</summary>
public static class ImageArgs
{
    public static readonly CliOption[] Options =
    [
        CliOption.Text("image", "FILE", "a PNG or JPEG image, resized, rescaled and normalised as the model's preprocessor_config.json says"),
        CliOption.Text("image-dir", "DIR", "every *.png, *.jpg, *.jpeg in DIR (in name order) instead"),
    ];

    /// <summary>The model's vision config, or one line saying the model reads text.</summary>
    public static Loading.VisionConfig RequireVision(LoadedModel loaded, string command) => loaded.Config.Vision
        ?? throw new UsageException($"{command} reads images: {loaded.Path} is a {loaded.Config.ModelType} language model (vision models: docs/vision.md)");

    /// <summary>The image files the arguments name, checked to exist; <paramref name="subFolders"/>: --image-dir's
    /// sub-folders too (e.g. a labelled set), each folder's files in name order, folders in name order after DIR's own.</summary>
    public static string[] Files(CliArgs args, bool subFolders = false)
    {
        string? file = args.Get("image"), dir = args.Get("image-dir");
        if (file is not null && dir is not null)
        {
            throw new UsageException("give either --image or --image-dir, not both");
        }
        if (file is not null)
        {
            return File.Exists(file) ? [file] : throw new UsageException($"--image: {file} not found");
        }
        if (dir is null)
        {
            throw new UsageException("missing --image FILE or --image-dir DIR");
        }
        if (!Directory.Exists(dir))
        {
            throw new UsageException($"--image-dir: {dir} is not a directory");
        }
        string[] files = subFolders
            ? [.. ImagesIn(dir), .. Directory.GetDirectories(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).SelectMany(ImagesIn)]
            : ImagesIn(dir);
        return files.Length > 0 ? files : throw new UsageException($"--image-dir: {dir} holds no .png, .jpg or .jpeg file");
    }

    public static readonly CliOption[] LabelsOptions =
    [
        CliOption.Text("image-dir", "DIR", "labelled images: each sub-folder of DIR is named after a label (its id2label name, or its id)\nand holds that label's *.png, *.jpg, *.jpeg (e.g. DIR/teapot/1.png)"),
        CliOption.Text("labels", "FILE", "instead of sub-folders: one line per image, NAME<TAB>LABEL, NAME relative to DIR"),
    ];

    /// <summary>The labelled images of --image-dir DIR: sub-folders named after labels, or a --labels file of
    /// NAME&lt;TAB&gt;LABEL lines (docs/vision.md). Labels are id2label names or ids; files are checked to exist.</summary>
    public static (string File, int Label)[] LabelledFiles(CliArgs args, Loading.VisionConfig vision)
    {
        string dir = args.Get("image-dir") ?? throw new UsageException("missing --image-dir DIR (labelled images)");
        if (!Directory.Exists(dir))
        {
            throw new UsageException($"--image-dir: {dir} is not a directory");
        }
        if (!vision.HasClassifier)
        {
            throw new UsageException("--image-dir: the model has no classifier (a ViTModel), so labelled images cannot be scored");
        }
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < vision.Labels.Count; i++)
        {
            byName.TryAdd(vision.Labels[i], i);
        }
        int Label(string label, string where) =>
            byName.TryGetValue(label, out int id) ? id
            : int.TryParse(label, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out id) && id < vision.Labels.Count ? id
            : throw new UsageException($"{where}: \"{label}\" is not one of the model's labels (id2label: {string.Join(", ", vision.Labels.Take(5).Select(l => $"\"{l}\""))}{(vision.Labels.Count > 5 ? ", …" : "")}, or an id 0–{vision.Labels.Count - 1})");
        var items = new List<(string, int)>();
        if (args.Get("labels") is { } labelsFile)
        {
            if (!File.Exists(labelsFile))
            {
                throw new UsageException($"--labels: {labelsFile} not found");
            }
            int n = 0;
            foreach (string line in File.ReadLines(labelsFile))
            {
                n++;
                if (line.Trim().Length == 0)
                {
                    continue;
                }
                int tab = line.IndexOf('\t', StringComparison.Ordinal);
                if (tab <= 0)
                {
                    throw new UsageException($"--labels: {labelsFile} line {n}: expected NAME<TAB>LABEL");
                }
                string file = Path.Combine(dir, line[..tab]);
                items.Add(File.Exists(file) ? (file, Label(line[(tab + 1)..].TrimEnd('\r'), $"--labels: {labelsFile} line {n}"))
                    : throw new UsageException($"--labels: {labelsFile} line {n}: {file} not found"));
            }
        }
        else
        {
            foreach (string sub in Directory.GetDirectories(dir).Order(StringComparer.Ordinal))
            {
                int label = Label(Path.GetFileName(sub), $"--image-dir: sub-folder {sub}");
                items.AddRange(ImagesIn(sub).Select(f => (f, label)));
            }
        }
        return items.Count > 0 ? [.. items]
            : throw new UsageException($"--image-dir: {dir} holds no labelled image (sub-folders named after labels with .png, .jpg or .jpeg files, or give --labels FILE)");
    }

    /// <summary>The labelled images as model inputs, decoded one at a time as they are enumerated.</summary>
    public static IEnumerable<Analysis.Vision.LabelledImage> ReadLabelled((string File, int Label)[] files, LoadedModel loaded, TextWriter stderr)
    {
        var processor = Processor(loaded);
        foreach (var (file, label) in files)
        {
            yield return new Analysis.Vision.LabelledImage(file, Read(file, loaded, processor, stderr), label);
        }
    }

    private static string[] ImagesIn(string dir) =>
        [.. Directory.GetFiles(dir).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg").Order(StringComparer.Ordinal)];

    public static readonly CliOption[] PruningOptions =
    [
        CliOption.Text("prune-tokens", "KEEP", "adaptive token pruning (Adaptive Sparse ViT): after each pruning block keep the share KEEP\n(0 < KEEP ≤ 1) of the patches with the highest head-weighted CLS attention, the CLS always;\nthe others are dropped from later blocks (fewer tokens: faster). 1.0 is exact"),
        CliOption.Text("prune-layers", "L,...", "the blocks after which to prune (0-based; default L/4, L/2, 3L/4 before the last block)"),
        CliOption.Text("head-weights", "FILE", "weight each head's CLS attention by an importance --json output's \"values\" (negatives\ncount as 0; default: every head alike)"),
    ];

    /// <summary>The query patch whose attention patterns and report draw over the image (patterns, report on a ViT).</summary>
    public static readonly CliOption QueryPatchOption = CliOption.Text("query-patch", "R,C|centre",
        "a vision model: show the attention of the patch in row R, column C (0-based from the top left;\n" +
        "its position is 1 + R·columns + C, the CLS being 0) over the patch grid, instead of the CLS's;\n" +
        "centre = the middle patch (row rows/2, column columns/2)");

    /// <summary>The patch of --query-patch R,C (or centre) on a grid of <paramref name="rows"/> × <paramref name="columns"/>
    /// patches, or null without it; exit 2 naming the option when it is not a patch of the grid.</summary>
    public static (int Row, int Column)? QueryPatch(CliArgs args, int rows, int columns)
    {
        if (args.Get("query-patch") is not { } text)
        {
            return null;
        }
        if (text.Trim() is "centre" or "center")
        {
            return (rows / 2, columns / 2);
        }
        var parts = text.Split(',');
        bool Int(string s, out int v) => int.TryParse(s.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out v);
        if (parts.Length != 2 || !Int(parts[0], out int r) || !Int(parts[1], out int c))
        {
            throw new UsageException($"--query-patch expects R,C (row and column, 0-based) or centre, got '{text}'");
        }
        if (r >= rows || c >= columns)
        {
            throw new UsageException($"--query-patch {r},{c} is outside the {rows}×{columns} patch grid (rows 0..{rows - 1}, columns 0..{columns - 1})");
        }
        return (r, c);
    }

    /// <summary>The Sparsifiner option of eval and classify on a ViT.</summary>
    public static readonly CliOption[] SparsifinerOptions =
    [
        CliOption.Text("sparsifiner", "K[,rank:R]", "Sparsifiner-style sparse attention: each query attends only to the K keys ranked\n" +
            "highest by a rank-R estimate of its scores (an SVD of each head's W_Q·W_Kᵀ, no training;\n" +
            "default R = head size / 4); only the chosen keys are computed (a gathered attention kernel).\n" +
            "K ≥ the number of tokens is the dense model, exactly"),
    ];

    /// <summary>The Sparsifiner attention of --sparsifiner K[,rank:R], or null without it.</summary>
    public static Analysis.Vision.Sparsifiner? Sparsifiner(CliArgs args, LoadedModel loaded)
    {
        if (args.Get("sparsifiner") is not { } text)
        {
            return null;
        }
        var parts = text.Split(',');
        int HD = loaded.Config.DHead;
        bool Int(string s, out int v) => int.TryParse(s.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out v) && v >= 1;
        if (parts.Length > 2 || !Int(parts[0], out int keys))
        {
            throw new UsageException($"--sparsifiner expects K[,rank:R] (K keys per query ≥ 1, e.g. 8 or 8,rank:4), got '{text}'");
        }
        int rank = Analysis.Vision.SparsifinerPlan.DefaultRank(HD);
        if (parts.Length == 2 && !(parts[1].Trim().StartsWith("rank:", StringComparison.Ordinal) && Int(parts[1].Trim()[5..], out rank) && rank <= HD))
        {
            throw new UsageException($"--sparsifiner: '{parts[1]}' should be rank:R with R in 1..{HD} (the head size)");
        }
        return new Analysis.Vision.Sparsifiner(loaded.Model, new Analysis.Vision.SparsifinerPlan(keys, rank));
    }

    /// <summary>Runs <paramref name="model"/>'s attention through the Sparsifiner's key selection (the gathered kernel: no
    /// hooks, only the chosen keys computed); nothing without one.</summary>
    public static void UseSparsifiner(Models.TransformerModel model, Analysis.Vision.Sparsifiner? sparse)
    {
        if (sparse is not null)
        {
            model.KeySelection = sparse;
        }
    }

    /// <summary>The pruning plan of --prune-tokens/--prune-layers/--head-weights, or null without --prune-tokens.</summary>
    public static TokenPruning? Pruning(CliArgs args, Loading.ModelConfig config)
    {
        if (!args.Has("prune-tokens"))
        {
            return args.Has("prune-layers") || args.Has("head-weights")
                ? throw new UsageException("--prune-layers and --head-weights go with --prune-tokens KEEP") : null;
        }
        string keepText = args.Get("prune-tokens")!;
        if (!double.TryParse(keepText, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double keep) || !(keep > 0 && keep <= 1))
        {
            throw new UsageException($"--prune-tokens expects a share in (0, 1], got '{keepText}'");
        }
        int L = config.NLayers;
        int[] layers = TokenPruning.DefaultLayers(L);
        if (args.Get("prune-layers") is { } list)
        {
            layers = [.. list.Split(',').Select(x => int.TryParse(x.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int l) && l < L ? l
                : throw new UsageException($"--prune-layers expects block indices 0..{L - 1} separated by commas, got '{list}'")).Distinct().Order()];
        }
        float[][]? weights = null;
        if (args.Get("head-weights") is { } file)
        {
            if (!File.Exists(file))
            {
                throw new UsageException($"--head-weights: {file} not found");
            }
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(file));
                weights = [.. doc.RootElement.GetProperty("values").EnumerateArray().Select(l => l.EnumerateArray().Select(v => Math.Max(0f, v.GetSingle())).ToArray())];
            }
            catch (Exception e) when (e is System.Text.Json.JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new UsageException($"--head-weights: {file} is not an importance --json output (\"values\": [[layer 0 heads], ...]): {e.Message}");
            }
            if (weights.Length != L || weights.Any(l => l.Length != config.NHeads))
            {
                throw new UsageException($"--head-weights: {file} has {weights.Length} layers of values; the model has {L} layers × {config.NHeads} heads");
            }
        }
        return new TokenPruning(layers, keep, weights);
    }

    /// <summary>One image as the model's input [1, channels, H, W]; a grayscale file for an RGB model is converted, with a
    /// note on stderr.</summary>
    public static ModelInput Read(string file, LoadedModel loaded, ImagePreprocessor processor, TextWriter stderr)
    {
        var vision = loaded.Config.Vision!;
        var image = DecodedImage.Load(file, vision.Channels);
        if (image.ConvertedFromGray)
        {
            stderr.WriteLine($"note: {file} is grayscale; converted to RGB (the model reads 3 channels)");
        }
        return ModelInput.Image(processor.Process(image), vision);
    }

    /// <summary>The model's image processor (its preprocessor_config.json, else ViTImageProcessor's defaults at its size).</summary>
    public static ImagePreprocessor Processor(LoadedModel loaded) =>
        ImagePreprocessor.ForModel(Directory.Exists(loaded.Path) ? loaded.Path : Path.GetDirectoryName(Path.GetFullPath(loaded.Path))!, loaded.Config.Vision!);
}
