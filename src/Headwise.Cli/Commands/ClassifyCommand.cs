using System.Globalization;
using Headwise.Vision;

namespace Headwise.Cli.Commands;

public sealed class ClassifyCommand : ICommand
{
    public string Name => "classify";
    public string Summary => "the top labels of an image classifier (ViT) for an image";
    public string Usage => """
        headwise classify --model M (--image FILE | --image-dir DIR) [--top K] [--prune-tokens KEEP [--prune-layers L,...]
                          [--head-weights FILE]] [--sparsifiner K[,rank:R]] [--json]
        """;

    public string Description => """
        Runs a vision model with a classifier (Hugging Face ViTForImageClassification) on an image and prints the K most
        probable labels (names from config.json's id2label) with their probabilities, softmax of the logits at the CLS.
        The image is preprocessed as the model's preprocessor_config.json says: PIL's resize (re-implemented; the pixels
        match PIL's to the byte), rescale, normalise. A grayscale image is converted to RGB, with a note on stderr.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        .. ImageArgs.Options,
        CliOption.Integer("top", "K", "how many labels to show (default 5; at most the number of labels)"),
        .. ImageArgs.PruningOptions,
        .. ImageArgs.SparsifinerOptions,
        CliOption.Flag("json", "print {\"logits\": [...], \"top\": [{\"label\": ..., \"probability\": ...}, ...]}; with --image-dir,\none such object per image, in name order, each with \"image\": its path"),
    ];

    public string Examples => """
        Example:
          headwise classify --model tests/goldens/vit_cls --image tests/goldens/vit_cls/image.png --top 3
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        int top = args.GetInt("top", 5, 1);
        string[] files = ImageArgs.Files(args);
        using var loaded = ModelArgs.Load(args);
        var vision = ImageArgs.RequireVision(loaded, "classify");
        if (!vision.HasClassifier)
        {
            throw new UsageException($"{loaded.Path} has no classifier (a ViTModel: no classifier.weight), so there are no labels to rank; its hidden states are in its hooks (headwise patterns --image)");
        }
        var processor = ImageArgs.Processor(loaded);
        var pruning = ImageArgs.Pruning(args, loaded.Config);
        var sparse = ImageArgs.Sparsifiner(args, loaded);
        ImageArgs.UseSparsifiner(loaded.Model, sparse);
        var results = new List<object>();
        foreach (string file in files)
        {
            var input = ImageArgs.Read(file, loaded, processor, stderr);
            int V = loaded.Config.VocabSize;
            // logits = self.classifier(sequence_output[:, 0, :]): the CLS position's
            var logits = pruning is null ? loaded.Model.Forward(input)[..V] : ((Models.Vit)loaded.Model).ForwardPruned(input, pruning).Output;
            var best = Classification.Top(logits, vision, top);
            if (json)
            {
                var topJson = best.Select(b => new { label = b.Label, probability = b.Probability }).ToArray();
                results.Add(files.Length == 1 && args.Get("image") is not null
                    ? new { logits, top = topJson }
                    : new { image = file, logits, top = topJson });
                continue;
            }
            if (files.Length > 1)
            {
                stdout.WriteLine(file);
            }
            foreach (var (_, label, p) in best)
            {
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{p,8:P2}  {label}"));
            }
        }
        if (json)
        {
            foreach (var r in results)
            {
                stdout.WriteLine(Json.Serialize(r));
            }
        }
        return 0;
    }
}
