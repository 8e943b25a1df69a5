using System.Text.Json;
using Headwise.Hooks;
using Headwise.Interventions;

namespace Headwise.Cli;

/// <summary>--intervene FILE, shared by every command that runs a model: add <see cref="Options"/> and <see cref="Help"/> to the
/// command's declarations and run <see cref="Apply"/>'s <see cref="RecipeApplication.Model"/> with its hooks.</summary>
public static class RecipeArgs
{
    public static readonly CliOption[] Options =
    [
        CliOption.Text("intervene", "FILE", "run under an intervention recipe (JSON; docs/interventions.md): scale, ablate, soften,\nredistribute_sink, inject, edit_ov, edit_qk on heads — every number is the intervened model's"),
    ];

    /// <summary>The recipe of --intervene bound to the loaded model (its weight edits made, its sources run), or null without
    /// the option. A text source is encoded as the commands encode a text (BOS prepended when the tokenizer adds one).</summary>
    public static RecipeApplication? Apply(CliArgs args, LoadedModel loaded)
    {
        string? path = args.Get("intervene");
        if (path is null)
        {
            return null;
        }
        var recipe = Recipe.Load(path);
        Func<string, int[]>? encode = loaded.Tokenizer is { } tok ? text => tok.Encode(text, addSpecial: true) : null;
        return RecipeApplication.Apply(recipe, loaded.Model, encode);
    }

    /// <summary>One line saying which recipe a result was computed under.</summary>
    public static string Describe(RecipeApplication applied) =>
        $"{applied.Recipe.Name} ({applied.Recipe.Source}, {applied.Recipe.Interventions.Count} intervention{(applied.Recipe.Interventions.Count == 1 ? "" : "s")})";

    /// <summary>Refuses an inject source of another length than any of the inputs a command runs (the error of
    /// <see cref="RecipeApplication.RequireSourcesCover"/>, exit 2).</summary>
    public static void RequireSourcesCover(RecipeApplication? applied, IEnumerable<int> inputLengths)
    {
        foreach (int length in inputLengths.Distinct())
        {
            applied?.RequireSourcesCover(length, generation: false);
        }
    }

    /// <summary>The recipe's hooks as the library analyses take them (their <c>baseHooks</c>), or null without a recipe.</summary>
    public static Action<HookSet>? Hooks(RecipeApplication? applied) => applied is null ? null : hooks => applied.AddHooks(hooks);

    /// <summary>Writes the text output's first line, <c>recipe       …</c>, under a recipe (nothing without one).</summary>
    public static void WriteLine(TextWriter stdout, RecipeApplication? applied)
    {
        if (applied is not null)
        {
            stdout.WriteLine($"recipe       {Describe(applied)}");
        }
    }

    /// <summary>A command's --json payload, with <c>"recipe": name</c> added as the last field under a recipe.</summary>
    public static string Json<T>(T payload, RecipeApplication? applied)
    {
        if (applied is null)
        {
            return Cli.Json.Serialize(payload);
        }
        var node = JsonSerializer.SerializeToNode(payload, Cli.Json.Options)!.AsObject();
        node["recipe"] = applied.Recipe.Name;
        return node.ToJsonString(Cli.Json.Options);
    }
}
