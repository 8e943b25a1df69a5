using Headwise.Interventions;
using Headwise.Loading;

namespace Headwise.Cli.Commands;

public sealed class ExportCommand : ICommand
{
    // the tokenizer files a Hugging Face directory may carry, copied as they are

    public string Name => "export";
    public string Summary => "write a Hugging Face checkpoint with a recipe's weight edits baked in";
    public string Usage => """
        headwise export --model M --intervene FILE --out DIR [--dtype f32|f16|bf16] [--json]
        """;

    public string Description => """
        Writes a new Hugging Face checkpoint (config.json, model.safetensors, and the model's tokenizer files) whose plain
        forward pass equals the model's run under the recipe. The recipe's items are baked into the weights in order:
        scale multiplies W_O of the head by the factor, ablate (method zero) sets it to 0, edit_ov and edit_qk make the
        singular-component edit through W_O or W_Q of the head. Every other kind (ablate mean, soften, redistribute_sink,
        inject) acts on a run's activations, not on weights, and is refused (exit 2, naming the item).
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        .. ModelArgs.Options,
        CliOption.Text("intervene", "FILE", "the recipe to bake (JSON; docs/interventions.md)"),
        CliOption.Text("out", "DIR", "directory to write; must not exist or be empty"),
        CliOption.Text("dtype", "D", "stored precision of the weights: f32 (default), f16 or bf16"),
        CliOption.Flag("json", "print {\"out\": DIR, \"recipe\": name, \"baked\": n, \"files\": [...]}"),
    ];

    public string Examples => """
        Example:
          headwise export --model models/demo --intervene docs/examples/recipes/edit_ov.json --out /tmp/demo-edited
          (then eval, generate or any analysis on /tmp/demo-edited gives what they give on models/demo under the recipe)
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        string recipePath = args.Require("intervene", "a recipe file (JSON)");
        string outDir = args.Require("out", "the directory to write");
        var dtype = CheckpointOutput.DType(args);
        CheckpointOutput.RequireNew(outDir);
        var recipe = Recipe.Load(recipePath);
        using var loaded = ModelArgs.Load(args);
        var weights = RecipeExport.Bake(recipe, loaded.Model);
        var files = CheckpointOutput.Write(weights, loaded, args.Get("tokenizer"), outDir, dtype, stderr, "export");

        int baked = recipe.Interventions.Count;
        if (json)
        {
            stdout.WriteLine(Json.Serialize(new { @out = outDir, recipe = recipe.Name, baked, files }));
            return 0;
        }
        stdout.WriteLine($"recipe       {recipe.Name} ({recipe.Source}, {baked} intervention{(baked == 1 ? "" : "s")} baked)");
        stdout.WriteLine($"wrote        {outDir}: {string.Join(", ", files)}");
        return 0;
    }
}
