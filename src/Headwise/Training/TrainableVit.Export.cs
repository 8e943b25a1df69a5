using System.Text.Json;
using System.Text.Json.Nodes;
using Headwise.Loading;
using Headwise.Vision;

namespace Headwise.Training;

// Export to a Hugging Face ViTForImageClassification checkpoint: the parameters already carry HF's names and shapes, so
// model.safetensors is the flat array cut at the parameter offsets; config.json says model_type vit with hidden_act
// gelu_new (the tanh GELU the trainer uses) and the labels; preprocessor_config.json says how pixels were normalised.
public sealed partial class TrainableVit
{
    /// <summary>The weights under their Hugging Face names, in parameter order.</summary>
    public IReadOnlyList<(string Name, int[] Shape, ReadOnlyMemory<float> Data)> ToHfTensors() =>
        [.. _params.Select(info => (info.Name, info.Shape, (ReadOnlyMemory<float>)Params.AsMemory(info.Offset, info.Length).ToArray()))];

    /// <summary>
    /// Writes config.json, model.safetensors (float32) and preprocessor_config.json into <paramref name="dir"/> (created if
    /// needed), each file atomically. <paramref name="labels"/> are the id2label names (default: the ids);
    /// <paramref name="processor"/> the preprocessing the training images had (its size must be the model's).
    /// </summary>
    public void SaveHf(string dir, ImagePreprocessor processor, IReadOnlyList<string>? labels = null)
    {
        labels ??= [.. Enumerable.Range(0, NL).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))];
        if (labels.Count != NL) throw new InvalidInputException($"SaveHf: {labels.Count} label names for a classifier of {NL} labels");
        if (processor.Height != S || processor.Width != S) throw new InvalidInputException($"SaveHf: the preprocessor's size {processor.Height}×{processor.Width} is not the model's {S}×{S}");
        Directory.CreateDirectory(dir);
        var id2label = new JsonObject();
        var label2id = new JsonObject();
        for (int i = 0; i < NL; i++)
        {
            id2label[i.ToString(System.Globalization.CultureInfo.InvariantCulture)] = labels[i];
            label2id[labels[i]] = i;
        }
        var config = new JsonObject
        {
            ["model_type"] = "vit",
            ["architectures"] = new JsonArray("ViTForImageClassification"),
            ["hidden_size"] = C,
            ["num_hidden_layers"] = L,
            ["num_attention_heads"] = NH,
            ["intermediate_size"] = F,
            ["hidden_act"] = "gelu_new",
            ["layer_norm_eps"] = Config.NormEps,
            ["image_size"] = S,
            ["patch_size"] = p,
            ["num_channels"] = ch,
            ["qkv_bias"] = true,
            ["hidden_dropout_prob"] = 0.0,
            ["attention_probs_dropout_prob"] = 0.0,
            ["initializer_range"] = 0.02,
            ["id2label"] = id2label,
            ["label2id"] = label2id,
        };
        var pre = new JsonObject
        {
            ["do_resize"] = processor.DoResize,
            ["size"] = new JsonObject { ["height"] = S, ["width"] = S },
            ["resample"] = (int)processor.Resample,
            ["do_rescale"] = processor.DoRescale,
            ["rescale_factor"] = processor.RescaleFactor,
            ["do_normalize"] = processor.DoNormalize,
            ["image_mean"] = new JsonArray([.. processor.Mean.Select(m => (JsonNode?)JsonValue.Create(m))]),
            ["image_std"] = new JsonArray([.. processor.Std.Select(s => (JsonNode?)JsonValue.Create(s))]),
            ["image_processor_type"] = "ViTImageProcessor",
        };
        var options = new JsonSerializerOptions { WriteIndented = true };
        WriteAtomically(Path.Combine(dir, "config.json"), config.ToJsonString(options));
        WriteAtomically(Path.Combine(dir, ImagePreprocessor.FileName), pre.ToJsonString(options));
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), ToHfTensors(), new Dictionary<string, string> { ["format"] = "pt" });
    }

    private static void WriteAtomically(string path, string text)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, text + "\n");
        File.Move(tmp, path, overwrite: true);
    }
}
