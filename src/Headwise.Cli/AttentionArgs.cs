using Headwise.Models;
using Headwise.Sparse;

namespace Headwise.Cli;

/// <summary>--attention SPEC, shared by the commands that run a model's forward (eval, generate, heads, report, compare): add
/// <see cref="Options"/> to the command's declarations and call <see cref="Apply"/> on the model it runs.</summary>
public static class AttentionArgs
{
    /// <summary>--attention SPEC, declared once for every command that takes it.</summary>
    public static readonly CliOption[] Options =
    [
        CliOption.Text("attention", "SPEC", "sparse attention (docs/sparse.md): dense (default) | window:W,sinks:S (each query sees its\n" +
            "W most recent keys and the first S) | topk-blocks:B,K[,proxy:P] (per block of B queries the\n" +
            "K best key blocks, chosen per head or by P proxy heads) | chunks:B,K (DHSA-style dynamic\n" +
            "chunks of whole blocks, the K best); its density (pairs computed ÷ causal pairs) is reported"),
    ];

    /// <summary>As <see cref="Options"/>, repeatable (compare: one spec per --model).</summary>
    public static readonly CliOption[] RepeatedOptions = [Options[0] with { Repeatable = true }];

    /// <summary>The policy of --attention set on <paramref name="model"/> (null without the option, or for <c>dense</c>:
    /// nothing changes). A malformed spec is one line, exit 2.</summary>
    public static AttentionPolicy? Apply(CliArgs args, TransformerModel model)
    {
        var policy = Parse(args);
        if (policy is not null)
        {
            model.SparseAttention = policy;
        }
        return policy;
    }

    /// <summary>The policy of --attention without setting it anywhere (null without the option).</summary>
    public static AttentionPolicy? Parse(CliArgs args) => args.Get("attention") is { } spec ? AttentionSpec.Parse(spec) : null;

    /// <summary>The text output's line <c>attention    SPEC (density d)</c>; nothing without --attention.</summary>
    public static void WriteLine(TextWriter stdout, AttentionPolicy? policy)
    {
        if (policy is not null)
        {
            stdout.WriteLine($"attention    {Describe(policy)}");
        }
    }

    public static string Describe(AttentionPolicy policy) => $"{policy.Spec} (density {policy.Density:F4})";

    /// <summary>A command's JSON line with <c>"attention": spec, "density": d</c> added last under --attention (unchanged without).</summary>
    public static string Json(string json, AttentionPolicy? policy) => policy is null ? json : Json(json, policy.Spec, policy.Density);

    /// <summary>As above, with the density given (a rolling cache's).</summary>
    public static string Json(string json, string spec, double density)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject();
        node["attention"] = spec;
        node["density"] = density;
        return node.ToJsonString(Cli.Json.Options);
    }
}
