using Headwise.Analysis;
using Headwise.Analysis.Constructed;
using Headwise.Analysis.Interventions;
using Headwise.Analysis.Tasks;
using Headwise.Interventions;
using Headwise.Models;

namespace Headwise.Tests.Models.Interventions;

/// <summary>The greedy head search: every objective it reports equals a full forward under the same recipe, it finds the
/// head the constructed induction circuit is built around, and it handles a budget beyond the model's heads.</summary>
public class HeadSearchTests
{
    private static readonly int[] Ids = [3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6, 17, 5, 9, 40];

    private sealed class Recorder : IProgress<AnalysisProgress>
    {
        public List<AnalysisProgress> Reports { get; } = [];

        public void Report(AnalysisProgress value) => Reports.Add(value);
    }

    // the objective under `recipe` by full forwards (RecipeApplication), as the search defines it
    private static double BruteForce(TransformerModel model, InterventionTarget target, Recipe recipe, MetricKind objective)
    {
        using var applied = RecipeApplication.Apply(recipe, model);
        double sum = 0;
        for (int i = 0; i < target.Items.Count; i++)
        {
            var input = ModelInput.Single(target.Items[i]);
            var clean = model.Forward(input);
            sum += target.Score(objective, i, applied.Forward(input), clean, model.Config.VocabSize);
        }
        return sum / target.Items.Count;
    }

    private static void AssertEveryStepIsAFullForward(TransformerModel model, InterventionTarget target, Intervention kind,
        MetricKind objective, HeadSearchResult r)
    {
        Assert.Equal(BruteForce(model, target, HeadSearch.RecipeFor(kind, []), objective), r.Baseline, 1e-5);
        for (int k = 1; k <= r.Steps.Length; k++)
        {
            var recipe = HeadSearch.RecipeFor(kind, r.Heads[..k]);
            Assert.Equal(BruteForce(model, target, recipe, objective), r.Steps[k - 1].Objective, 1e-5);
        }
        Assert.Equal(r.Heads.Length, r.Heads.Distinct().Count());
        // the recipe the search returns is the final set's, and reproduces its objective
        Assert.Equal(r.Final, BruteForce(model, target, r.Recipe, objective), 1e-5);
    }

    public static TheoryData<string, string, MetricKind, SearchDirection> Kinds => new()
    {
        { "gpt2_untied", "soften", MetricKind.Loss, SearchDirection.Up },
        { "gpt2_untied", "scale", MetricKind.Kl, SearchDirection.Up },
        { "llama_gqa", "ablate-mean", MetricKind.Loss, SearchDirection.Down },
        { "llama_gqa", "soften", MetricKind.Kl, SearchDirection.Up },
        { "neox_parallel", "ablate-zero", MetricKind.Loss, SearchDirection.Up },
    };

    private static Intervention Kind(string name) => name switch
    {
        "soften" => new SoftenHeads([], 0.7),
        "scale" => new ScaleHeads([], 2.5),
        "ablate-mean" => new AblateHeads([], Mean: true),
        _ => new AblateHeads([], Mean: false),
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EveryReportedObjectiveEqualsAFullForwardUnderTheRecipe(string model, string kind, MetricKind objective, SearchDirection direction)
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.Goldens, model));
        var target = InterventionTarget.FromTokens(Ids);
        var r = HeadSearch.Run(m.Model, target, Kind(kind), objective, direction, budget: 3);
        Assert.Equal(3, r.Steps.Length);
        AssertEveryStepIsAFullForward(m.Model, target, Kind(kind), objective, r);
        // greedy in the asked direction: the first head beats (or ties) the empty set's neighbours, and resumed candidates
        // cost less than full forwards
        int heads = m.Config.NLayers * m.Config.NHeads;
        Assert.Equal(3 + heads + heads - 1 + heads - 2, r.Forwards);
        Assert.True(r.ForwardEquivalents < r.Forwards, $"{r.ForwardEquivalents} forward-equivalents for {r.Forwards} forwards");
    }

    [Fact]
    public void TaskObjectiveOnStories260KEqualsAFullForward()
    {
        string dir = TestPaths.RequireStories260K();
        using var m = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var task = TaskLibrary.Tokenize(TaskLibrary.Create("induction", 2, 0, m.Tokenizer), m.RequireTokenizer());
        var target = InterventionTarget.FromTask(task);
        var kind = new SoftenHeads([], 1);
        var r = HeadSearch.Run(m.Model, target, kind, MetricKind.Task, SearchDirection.Up, budget: 2);
        AssertEveryStepIsAFullForward(m.Model, target, kind, MetricKind.Task, r);
        Assert.True(r.Final > r.Baseline, $"softening the chosen heads did not raise the induction loss ({r.Baseline} → {r.Final})");
    }

    private static int[] DistinctRepeated(int seed, int half)
    {
        var ids = Enumerable.Range(0, ToyModels.VocabSize).ToArray();
        new Random(seed).Shuffle(ids);
        return [.. ids[..half], .. ids[..half]];
    }

    [Fact]
    public void FindsTheInductionHeadOfTheConstructedCircuit()
    {
        using var toy = ToyModels.InductionCircuit();
        var prompts = Enumerable.Range(0, 2).Select(s => new TokenizedPrompt(DistinctRepeated(s, 16), null, [], [], LossFrom: 17)).ToArray();
        var task = new TokenizedTask("toy-induction", TaskMetric.SecondHalfLoss, "second-half loss", prompts, []);
        var target = InterventionTarget.FromTask(task);
        var progress = new Recorder();
        var steps = new List<SearchStep>();
        var kind = new AblateHeads([], Mean: false);
        var r = HeadSearch.Run(toy, target, kind, MetricKind.Task, SearchDirection.Up, budget: 2, progress, steps.Add);

        // the induction head is what predicts the second half: without it the loss is highest
        Assert.Equal(ToyModels.InductionHeadId, r.Steps[0].Head);
        Assert.True(r.Steps[0].Objective > r.Baseline + 2, $"{r.Baseline} → {r.Steps[0].Objective}");
        // once it is gone nothing else writes the prediction: every second head leaves the loss where it is
        Assert.Equal(r.Steps[0].Objective, r.Steps[1].Objective, 1e-5);
        Assert.Equal(r.Steps, steps);
        AssertEveryStepIsAFullForward(toy, target, kind, MetricKind.Task, r);

        int total = 8 + 7;
        Assert.Equal(new AnalysisProgress("searching heads", 0, total), progress.Reports[0]);
        Assert.Equal(new AnalysisProgress("searching heads", total, total), progress.Reports[^1]);
        Assert.Equal(total + 1, progress.Reports.Count);
    }

    [Fact]
    public void ABudgetBeyondTheModelsHeadsAddsEveryHeadOnce()
    {
        using var toy = ToyModels.SinkHead(); // one layer, four heads
        var target = InterventionTarget.FromTokens(DistinctRepeated(3, 10));
        var r = HeadSearch.Run(toy, target, new SoftenHeads([], 0.5), MetricKind.Kl, SearchDirection.Down, budget: 100);
        Assert.Equal(4, r.Steps.Length);
        Assert.Equal(4, r.Heads.Distinct().Count());
        Assert.Equal(4 + (4 + 3 + 2 + 1), r.Forwards);
        Assert.Equal(0.0, r.Baseline);
    }

    [Fact]
    public void BadInputIsRefusedNamingWhatIsWrong()
    {
        using var toy = ToyModels.SinkHead();
        var target = InterventionTarget.FromTokens(Ids);
        var budget = Assert.Throws<InvalidInputException>(() =>
            HeadSearch.Run(toy, target, new ScaleHeads([], 2), MetricKind.Loss, SearchDirection.Up, budget: 0));
        Assert.Contains("budget 0", budget.Message);
        var task = Assert.Throws<InvalidInputException>(() =>
            HeadSearch.Run(toy, target, new ScaleHeads([], 2), MetricKind.Task, SearchDirection.Up, budget: 1));
        Assert.Contains("task", task.Message);
        var strength = Assert.Throws<InvalidInputException>(() =>
            HeadSearch.Run(toy, target, new SoftenHeads([], 1.5), MetricKind.Loss, SearchDirection.Up, budget: 1));
        Assert.Contains("strength", strength.Message);
        var kind = Assert.Throws<InvalidInputException>(() =>
            HeadSearch.Run(toy, target, new InjectActivations([], InjectComponent.Q, new InjectSource([1, 2], null)), MetricKind.Loss, SearchDirection.Up, budget: 1));
        Assert.Contains("inject", kind.Message);
    }
}
