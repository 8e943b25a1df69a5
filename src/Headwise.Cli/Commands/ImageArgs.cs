using Headwise.Models;
using Headwise.Vision;

namespace Headwise.Cli.Commands;

/// <summary>The images of a vision command: --image FILE or --image-dir DIR (PNG/JPEG), preprocessed as the model's
/// preprocessor_config.json says (docs/vision.md).</summary>
public static class ImageArgs
{
    public static readonly string[] Options = ["image", "image-dir"];

    public const string Help =
        "  --image FILE      a PNG or JPEG image, resized, rescaled and normalised as the model's preprocessor_config.json says\n" +
        "  --image-dir DIR   every *.png, *.jpg, *.jpeg in DIR (in name order) instead";

    /// <summary>The model's vision config, or one line saying the model reads text.</summary>
    public static Loading.VisionConfig RequireVision(LoadedModel loaded, string command) => loaded.Config.Vision
        ?? throw new UsageException($"{command} reads images: {loaded.Path} is a {loaded.Config.ModelType} language model (vision models: docs/vision.md)");

    /// <summary>The image files the arguments name, checked to exist.</summary>
    public static string[] Files(CliArgs args)
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
        var files = Directory.GetFiles(dir).Where(f => Path.GetExtension(f).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg")
            .Order(StringComparer.Ordinal).ToArray();
        return files.Length > 0 ? files : throw new UsageException($"--image-dir: {dir} holds no .png, .jpg or .jpeg file");
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
