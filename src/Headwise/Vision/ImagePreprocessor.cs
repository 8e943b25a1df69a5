using System.Text.Json;
using Headwise.Loading;
using Headwise.Models;
using SkiaSharp;

namespace Headwise.Vision;

/// <summary>
/// A checkpoint's <c>preprocessor_config.json</c> as Hugging Face's <c>ViTImageProcessor</c> reads it, with its defaults:
/// resize to size.height × size.width with PIL filter <c>resample</c> (2 = bilinear), rescale by <c>rescale_factor</c>
/// (1/255), normalise with <c>image_mean</c> / <c>image_std</c> (0.5 each). A model without the file gets these defaults at
/// its own image size.
/// </summary>
public sealed record ImagePreprocessor(bool DoResize, int Height, int Width, ResampleFilter Resample, bool DoRescale,
    double RescaleFactor, bool DoNormalize, float[] Mean, float[] Std)
{
    public const string FileName = "preprocessor_config.json";

    /// <summary>The processor of the model directory <paramref name="modelDir"/>: its preprocessor_config.json, or HF's
    /// ViTImageProcessor defaults at the model's image size when there is none.</summary>
    public static ImagePreprocessor ForModel(string modelDir, VisionConfig vision)
    {
        string path = Path.Combine(modelDir, FileName);
        var defaults = new ImagePreprocessor(true, vision.ImageSize, vision.ImageSize, ResampleFilter.Bilinear, true, 1 / 255.0, true,
            [0.5f, 0.5f, 0.5f], [0.5f, 0.5f, 0.5f]);
        return File.Exists(path) ? Read(path, defaults, vision.Channels) : defaults with { Mean = Fill(0.5f, vision.Channels), Std = Fill(0.5f, vision.Channels) };
    }

    private static float[] Fill(float v, int n) => [.. Enumerable.Repeat(v, n)];

    /// <summary>Reads a preprocessor_config.json over <paramref name="defaults"/>; names the file and field on bad input.</summary>
    public static ImagePreprocessor Read(string path, ImagePreprocessor defaults, int channels)
    {
        JsonElement root;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            root = doc.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: not valid JSON ({e.Message})");
        }
        ModelFormatException Bad(string field, string expected) => new($"{path}: field \"{field}\" should be {expected}");
        JsonElement? Field(string name) => root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;
        bool Bool(string name, bool d) => Field(name) is { } v ? v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(name, "true or false"),
        } : d;
        double Number(string name, double d) => Field(name) is { } v ? (v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw Bad(name, "a number")) : d;
        float[] Vector(string name, float[] d)
        {
            if (Field(name) is not { } v)
            {
                return channels == d.Length ? d : Fill(d[0], channels);
            }
            if (v.ValueKind == JsonValueKind.Number)
            {
                return Fill(v.GetSingle(), channels); // one value for every channel
            }
            if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() != channels || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.Number))
            {
                throw Bad(name, $"a list of {channels} numbers (one per channel)");
            }
            return [.. v.EnumerateArray().Select(e => e.GetSingle())];
        }

        int height = defaults.Height, width = defaults.Width;
        if (Field("size") is { } size)
        {
            if (size.ValueKind == JsonValueKind.Number)
            {
                height = width = size.GetInt32();
            }
            else if (size.ValueKind == JsonValueKind.Object && size.TryGetProperty("height", out var h) && size.TryGetProperty("width", out var w)
                && h.TryGetInt32(out height) && w.TryGetInt32(out width))
            {
            }
            else
            {
                throw Bad("size", "{\"height\": H, \"width\": W} (as ViTImageProcessor; shortest_edge resizing is not supported)");
            }
            if (height <= 0 || width <= 0)
            {
                throw Bad("size", "positive");
            }
        }
        int resample = (int)Number("resample", (int)defaults.Resample);
        if (resample is < 1 or > 5)
        {
            throw Bad("resample", "one of PIL's filters 1 (lanczos), 2 (bilinear), 3 (bicubic), 4 (box), 5 (hamming); 0 (nearest) is not supported");
        }
        var std = Vector("image_std", defaults.Std);
        if (std.Any(s => s == 0))
        {
            throw Bad("image_std", "non-zero");
        }
        return new ImagePreprocessor(Bool("do_resize", defaults.DoResize), height, width, (ResampleFilter)resample,
            Bool("do_rescale", defaults.DoRescale), Number("rescale_factor", defaults.RescaleFactor),
            Bool("do_normalize", defaults.DoNormalize), Vector("image_mean", defaults.Mean), std);
    }

    /// <summary>pixel_values [1, channels, H, W] of one decoded image, as ViTImageProcessor computes them: the uint8 image
    /// resized by PIL's filter, then (float32)(value · rescale_factor) (in float64, as HF's rescale), then (x − mean) / std
    /// in float32.</summary>
    public ImagePixels Process(DecodedImage image)
    {
        int ch = image.Channels;
        if (Mean.Length != ch || Std.Length != ch)
        {
            throw new InvalidInputException($"the preprocessor normalises {Mean.Length} channels; the image has {ch}");
        }
        byte[] bytes = image.Pixels;
        int H = image.Height, W = image.Width;
        if (DoResize)
        {
            bytes = PilResize.Resize(bytes, H, W, ch, Height, Width, Resample);
            H = Height;
            W = Width;
        }
        var data = new float[ch * H * W];
        for (int c = 0; c < ch; c++)
        {
            for (int i = 0; i < H * W; i++)
            {
                float x = DoRescale ? (float)(bytes[i * ch + c] * RescaleFactor) : bytes[i * ch + c];
                data[c * H * W + i] = DoNormalize ? (x - Mean[c]) / Std[c] : x;
            }
        }
        return new ImagePixels(data, 1, ch, H, W);
    }

    /// <summary>Several images of one size (after resizing) as one batch [B, channels, H, W].</summary>
    public static ImagePixels Stack(IReadOnlyList<ImagePixels> images)
    {
        var first = images[0];
        if (images.Any(i => i.Channels != first.Channels || i.Height != first.Height || i.Width != first.Width))
        {
            throw new InvalidInputException("images of different sizes cannot form one batch (turn on do_resize in preprocessor_config.json)");
        }
        return new ImagePixels([.. images.SelectMany(i => i.Data)], images.Count, first.Channels, first.Height, first.Width);
    }
}

/// <summary>An image decoded to 8-bit interleaved channels (H, W, channels), and whether it was converted from grayscale.</summary>
public sealed record DecodedImage(byte[] Pixels, int Height, int Width, int Channels, bool ConvertedFromGray)
{
    /// <summary>Decodes a PNG or JPEG (SkiaSharp) into <paramref name="channels"/> channels: 3 = RGB (a grayscale file is
    /// replicated into R, G and B, as PIL's convert("RGB"); <see cref="ConvertedFromGray"/> says so), 1 = luma (PIL's
    /// convert("L"): (19595·R + 38470·G + 7471·B + 2¹⁵) >> 16). Alpha is dropped. Unreadable or truncated files throw
    /// <see cref="InvalidInputException"/> naming the file.</summary>
    public static DecodedImage Load(string path, int channels)
    {
        if (channels is not (1 or 3))
        {
            throw new InvalidInputException($"{path}: a model reading {channels} channels (only 1 or 3 are supported)");
        }
        if (!File.Exists(path))
        {
            throw new InvalidInputException($"{path}: image file not found");
        }
        using var data = SKData.Create(path) ?? throw new InvalidInputException($"{path}: cannot read the file");
        using var codec = SKCodec.Create(data) ?? throw new InvalidInputException($"{path}: not a readable image (PNG or JPEG expected)");
        var info = codec.Info;
        bool gray = info.ColorType == SKColorType.Gray8;
        var target = new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[target.BytesSize];
        SKCodecResult result;
        unsafe
        {
            fixed (byte* p = rgba)
            {
                result = codec.GetPixels(target, (IntPtr)p);
            }
        }
        if (result != SKCodecResult.Success)
        {
            throw new InvalidInputException($"{path}: the image could not be decoded ({result}{(result == SKCodecResult.IncompleteInput ? ": the file is truncated" : "")})");
        }
        int n = info.Width * info.Height;
        var pixels = new byte[n * channels];
        for (int i = 0; i < n; i++)
        {
            byte r = rgba[i * 4], g = rgba[i * 4 + 1], b = rgba[i * 4 + 2];
            if (channels == 3)
            {
                pixels[i * 3] = r;
                pixels[i * 3 + 1] = g;
                pixels[i * 3 + 2] = b;
            }
            else
            {
                pixels[i] = gray ? r : (byte)((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16);
            }
        }
        return new DecodedImage(pixels, info.Height, info.Width, channels, gray && channels == 3);
    }
}
