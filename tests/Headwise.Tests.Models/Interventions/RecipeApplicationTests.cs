using Headwise.Analysis;
using Headwise.Analysis.Constructed;
using Headwise.Analysis.Interventions;
using Headwise.Generation;
using Headwise.Hooks;
using Headwise.Interventions;
using Headwise.Models;

namespace Headwise.Tests.Models.Interventions;

/// <summary>Recipes applied to models: the issue's identities (settings that change nothing, kinds that equal each other),
/// the pattern edits checked through a cache, each kind's effect, the constructed induction circuit, GQA and bad input.</summary>
public class RecipeApplicationTests
{
    private static LoadedModel Golden(string name) => ModelLoader.Load(Path.Combine(TestPaths.Goldens, name));

    private static readonly int[] Ids = [3, 17, 5, 9, 22, 1, 8, 4, 30, 2, 11, 6, 14, 27];

    private static Recipe R(string items) => Recipe.Parse($$"""{"name": "test", "interventions": [{{items}}]}""", "test.json");

    private static float[] Run(TransformerModel model, string items, int[]? ids = null)
    {
        using var applied = RecipeApplication.Apply(R(items), model);
        return applied.Forward(ModelInput.Single(ids ?? Ids));
    }

    private static double Nll(TransformerModel model, float[] logits, int[]? ids = null)
    {
        ids ??= Ids;
        return InterventionMetrics.MeanNll(logits, ids, model.Config.VocabSize, 1, ids.Length);
    }

    private static void Close(float[] expected, float[] actual, float tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        }
        Assert.True(max <= tolerance, $"max |Δ| = {max} > {tolerance}");
    }

    // the same forward path as a recipe that rewrites the pattern of `layer` (the unfused attention), writing nothing
    private static float[] PatternPath(TransformerModel model, int layer)
    {
        var hooks = new HookSet(model.Config.NLayers);
        hooks.Add(new HookPoint(layer, HookKind.Pattern), _ => { });
        return model.Forward(ModelInput.Single(Ids), hooks);
    }

    [Theory]
    [InlineData("gpt2_untied")]
    [InlineData("llama_gqa")]
    public void IdentitySettingsChangeNothing(string name)
    {
        using var m = Golden(name);
        var model = m.Model;
        var plain = model.Forward(ModelInput.Single(Ids));
        string self = string.Join(", ", Ids);
        // bitwise: the same kernels run on the same values
        Assert.Equal(plain, Run(model, """{"kind": "scale", "heads": ["1.0", "1.3", "0.2"], "factor": 1}"""));
        Assert.Equal(plain, Run(model, """{"kind": "inject", "heads": ["0.1", "1.2"], "component": "q", "source": {"tokens": [""" + self + "]}}"));
        Assert.Equal(plain, Run(model, """{"kind": "edit_ov", "head": "1.1", "remove": []}"""));
        Assert.Equal(plain, Run(model, """{"kind": "edit_qk", "head": "0.3", "scale": {"0": 1, "2": 1}}"""));
        // bitwise against the same (unfused) attention path; within float rounding of the fused one
        var unfused = PatternPath(model, 1);
        Assert.Equal(unfused, Run(model, """{"kind": "soften", "heads": ["1.2"], "strength": 0}"""));
        Assert.Equal(unfused, Run(model, """{"kind": "redistribute_sink", "heads": ["1.0", "1.3"], "fraction": 0, "sinks": [0]}"""));
        Close(plain, unfused, 1e-5f);
        // grouped-query k/v: that head's attention recomputed by the same fused kernel on the same values
        Assert.Equal(plain, Run(model, """{"kind": "inject", "heads": ["0.0"], "component": "k", "source": {"tokens": [""" + self + "]}}"));
        Assert.Equal(plain, Run(model, """{"kind": "inject", "heads": ["1.3"], "component": "v", "source": {"tokens": [""" + self + "]}}"));
    }

    [Theory]
    [InlineData("gpt2_untied")]
    [InlineData("llama_gqa")]
    public void ScaleZeroAndRemovingEveryComponentEqualZeroAblation(string name)
    {
        using var m = Golden(name);
        var model = m.Model;
        var zero = Run(model, """{"kind": "ablate", "heads": ["1.2"], "method": "zero"}""");
        Assert.Equal(zero, Run(model, """{"kind": "scale", "heads": ["1.2"], "factor": 0}"""));
        // a hand-written hook that clears the head's z agrees
        static void Clear2(ActivationView a)
        {
            int NH = a.Shape[2], HD = a.Shape[3];
            for (int t = 0; t < a.Shape[1]; t++)
            {
                a.Data.Span.Slice((t * NH + 2) * HD, HD).Clear();
            }
        }
        var hooked = model.RunWithHooks(ModelInput.Single(Ids), ("blocks.1.attn.hook_z", Clear2));
        Assert.Equal(hooked, zero);
        string all = string.Join(", ", Enumerable.Range(0, model.Config.DHead));
        Close(zero, Run(model, $$"""{"kind": "edit_ov", "head": "1.2", "remove": [{{all}}]}"""), 1e-5f);
    }

    [Fact]
    public void MeanAblationMatchesTheAblateCommandsMean()
    {
        using var m = Golden("gpt2_untied");
        var model = m.Model;
        var heads = new[] { new HeadId(1, 1), new HeadId(1, 3) };
        var expected = Ablation.Ablate(model, InterventionTarget.FromTokens(Ids), heads, AblationMethod.Mean, MetricKind.Loss, reuseClean: false);
        double nll = Nll(model, Run(model, """{"kind": "ablate", "heads": ["1.1", "1.3"], "method": "mean"}"""));
        Assert.Equal(expected.Ablated, nll, 1e-6);
        Assert.NotEqual(expected.Clean, nll, 1e-4);
    }

    [Theory]
    [InlineData("gpt2_untied", 0.3)]
    [InlineData("llama_gqa", 1.0)]
    public void RedistributionKeepsRowSumsAndScalesTheSinkMassByOneMinusF(string name, double f)
    {
        using var m = Golden(name);
        var model = m.Model;
        var (_, clean) = model.RunWithCache(ModelInput.Single(Ids), n => n == "blocks.1.attn.hook_pattern");
        using var applied = RecipeApplication.Apply(R($$"""{"kind": "redistribute_sink", "heads": ["1.1"], "fraction": {{f}}, "sinks": [0, 2]}"""), model);
        var (_, cache) = applied.RunWithCache(ModelInput.Single(Ids), n => n == "blocks.1.attn.hook_pattern");
        var before = clean["blocks.1.attn.hook_pattern"].Data;
        var after = cache["blocks.1.attn.hook_pattern"].Data; // [1, NH, T, T]
        int T = Ids.Length, NH = model.Config.NHeads;
        for (int h = 0; h < NH; h++)
        {
            for (int q = 0; q < T; q++)
            {
                var a = after.AsSpan((h * T + q) * T, T);
                var b = before.AsSpan((h * T + q) * T, T);
                double sum = 0;
                foreach (float x in a)
                {
                    sum += x;
                }
                Assert.Equal(1, sum, 1e-5);
                if (h != 1 || q <= 2)
                {
                    Assert.True(a.SequenceEqual(b), $"head {h} row {q} changed"); // other heads, and rows q ≤ max(sinks)
                    continue;
                }
                Assert.Equal((1 - f) * (b[0] + b[2]), a[0] + a[2], 1e-6);
                Assert.Equal((float)((1 - f) * b[0]), a[0]);
                // the rest grows in proportion: every other visible key by the same ratio
                double ratio = a[1] / b[1];
                for (int k = 3; k <= q; k++)
                {
                    Assert.Equal(ratio, a[k] / b[k], 1e-4);
                }
            }
        }
    }

    [Fact]
    public void SofteningMovesEachRowTowardsTheIdentity()
    {
        using var m = Golden("llama_gqa");
        var model = m.Model;
        var (_, clean) = model.RunWithCache(ModelInput.Single(Ids), n => n == "blocks.0.attn.hook_pattern");
        using var applied = RecipeApplication.Apply(R("""{"kind": "soften", "heads": ["0.3"], "strength": 0.25}"""), model);
        var (_, cache) = applied.RunWithCache(ModelInput.Single(Ids), n => n == "blocks.0.attn.hook_pattern");
        var before = clean["blocks.0.attn.hook_pattern"].Data;
        var after = cache["blocks.0.attn.hook_pattern"].Data;
        int T = Ids.Length;
        for (int q = 0; q < T; q++)
        {
            for (int k = 0; k < T; k++)
            {
                int i = (3 * T + q) * T + k;
                Assert.Equal(0.75 * before[i] + (q == k ? 0.25 : 0), after[i], 1e-6);
            }
        }
    }

    [Fact]
    public void EveryKindChangesTheLossOfTheDemoModel()
    {
        using var m = ModelLoader.Load(Path.Combine(TestPaths.RepoRoot, "models", "demo"));
        var tok = m.RequireTokenizer();
        var ids = tok.Encode("The cat sat on the small boat near the sea and");
        double clean = Nll(m.Model, m.Model.Forward(ModelInput.Single(ids)), ids);
        foreach (var file in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "docs", "examples", "recipes"), "*.json"))
        {
            using var applied = RecipeApplication.Apply(Recipe.Load(file), m.Model, s => tok.Encode(s));
            double nll = Nll(applied.Model, applied.Forward(ModelInput.Single(ids)), ids);
            Assert.True(Math.Abs(nll - clean) > 1e-4, $"{Path.GetFileName(file)}: {nll} vs clean {clean}");
        }
    }

    [Fact]
    public void ZeroAblatingTheInductionHeadDestroysTheRepeatAndScalingItDownWeakensIt()
    {
        using var model = ToyModels.InductionCircuit();
        var rng = new Random(3);
        var first = Enumerable.Range(32, ToyModels.VocabSize - 32).OrderBy(_ => rng.Next()).Take(40).ToArray();
        int n = first.Length, T = 2 * n;
        var ids = first.Concat(first).ToArray();
        double SecondHalf(float[] logits) => InterventionMetrics.MeanNll(logits, ids, ToyModels.VocabSize, n + 1, T);
        double clean = SecondHalf(model.Forward(ModelInput.Single(ids)));
        double half = SecondHalf(Run(model, """{"kind": "scale", "heads": ["1.0"], "factor": 0.5}""", ids));
        double ablated = SecondHalf(Run(model, """{"kind": "ablate", "heads": ["1.0"], "method": "zero"}""", ids));
        Assert.True(clean < 0.01, $"clean {clean}");
        Assert.True(ablated > 3, $"ablated {ablated}");
        Assert.True(half > clean && half < ablated, $"clean {clean}, scale 0.5 {half}, ablated {ablated}");
    }

    [Fact]
    public void WeightEditsOnAGroupedQueryModelChangeOnlyThatQueryHead()
    {
        using var m = Golden("llama_gqa");
        var before = m.Model.ToCanonical().Layers[1].Attention;
        using var applied = RecipeApplication.Apply(R("""
            {"kind": "edit_ov", "head": "1.1", "remove": [0]}, {"kind": "edit_qk", "head": "1.1", "scale": {"1": 3}}
            """), m.Model);
        Assert.NotSame(m.Model, applied.Model);
        var after = applied.Model.ToCanonical().Layers[1].Attention;
        Assert.Equal(before.WK, after.WK); // kv head 0 is shared by query heads 0 and 1: never touched
        Assert.Equal(before.WV, after.WV);
        for (int h = 0; h < before.NHeads; h++)
        {
            Assert.Equal(h == 1, !before.O(h).SequenceEqual(after.O(h)));
            Assert.Equal(h == 1, !before.Q(h).SequenceEqual(after.Q(h)));
        }
        // W_OV's singular values: the largest gone, the others kept
        static double[] Sv(AttentionWeights a, int h)
        {
            int C = a.DModel, HD = a.DHead, j = a.KvHeadOf(h);
            var wv = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(C, HD, (r, k) => a.WV[(j * C + r) * HD + k]);
            var wo = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(HD, C, (k, r) => a.WO[(h * HD + k) * C + r]);
            return (wv * wo).Svd(false).S.ToArray();
        }
        var s0 = Sv(before, 1);
        var s1 = Sv(after, 1);
        Assert.Equal(s0[1], s1[0], 1e-5);
        Assert.Equal(s0[2], s1[1], 1e-5);
        Assert.True(s1[HD(before) - 1] < 1e-5);
    }

    private static int HD(AttentionWeights a) => a.DHead;

    [Theory]
    [InlineData("k")]
    [InlineData("v")]
    public void GroupedQueryKeysOrValuesInjectedIntoOneQueryHeadChangeOnlyThatHead(string component)
    {
        using var m = Golden("llama_gqa"); // 4 query heads, 2 kv heads: query heads 0 and 1 read kv head 0
        int[] source = [.. Ids.Reverse()];
        const string z1 = "blocks.1.attn.hook_z";
        var (_, plain) = m.Model.RunWithCache(ModelInput.Single(Ids), n => n == z1);
        using var applied = RecipeApplication.Apply(R($$$"""
            {"kind": "inject", "heads": ["1.1"], "component": "{{{component}}}", "source": {"tokens": [{{{string.Join(", ", source)}}}]}}
            """), m.Model);
        var (_, cache) = applied.RunWithCache(ModelInput.Single(Ids), n => n == z1);
        int T = Ids.Length, NH = m.Config.NHeads, HD = m.Config.DHead;
        for (int h = 0; h < NH; h++)
        {
            bool same = true;
            for (int t = 0; t < T; t++)
            {
                same &= plain[z1].Data.AsSpan((t * NH + h) * HD, HD).SequenceEqual(cache[z1].Data.AsSpan((t * NH + h) * HD, HD));
            }
            Assert.True(same == (h != 1), $"head 1.{h}: z {(same ? "unchanged" : "changed")}"); // bitwise for head 1.0, which shares the kv head
        }
    }

    [Fact]
    public void GroupedQueryKeyInjectionComesBeforeTheZItemsAndRunsOnBatches()
    {
        using var m = Golden("llama_gqa");
        string source = string.Join(", ", Ids.Reverse());
        string inject = $$$"""{"kind": "inject", "heads": ["1.1", "0.2"], "component": "k", "source": {"tokens": [{{{source}}}]}}""";
        const string scale = """{"kind": "scale", "heads": ["1.1"], "factor": 2}""";
        // a change of keys precedes every hook_z item, wherever it is listed (as in the reference)
        var injectFirst = Run(m.Model, inject + ", " + scale);
        Assert.Equal(injectFirst, Run(m.Model, scale + ", " + inject));
        Assert.NotEqual(injectFirst, Run(m.Model, inject));
        // two unpadded sequences at once: each as when run alone
        using var applied = RecipeApplication.Apply(R(inject), m.Model);
        int[] other = [.. Ids.Select(t => (t * 7 + 3) % m.Config.VocabSize)];
        var batch = applied.Forward(new ModelInput([.. Ids, .. other], 2, Ids.Length));
        int half = batch.Length / 2;
        Close(applied.Forward(ModelInput.Single(Ids)), batch[..half], 1e-5f);
        Close(applied.Forward(ModelInput.Single(other)), batch[half..], 1e-5f);
        // a hook set that shows kv heads once per query head (read-only copies) gives the same result
        var expanded = new HookSet(m.Config.NLayers) { ExpandKvHeads = true };
        applied.AddHooks(expanded);
        Assert.Equal(applied.Forward(ModelInput.Single(Ids)), applied.Model.Forward(ModelInput.Single(Ids), expanded));
    }

    [Fact]
    public void GroupedQueryKeyOrValueInjectionRefusesPatternKindsOnTheSameHeadAndKeysOnPaddedInputs()
    {
        using var m = Golden("llama_gqa");
        string self = string.Join(", ", Ids);
        var e = Assert.Throws<InvalidInputException>(() => RecipeApplication.Apply(R($$$"""
            {"kind": "soften", "heads": ["1.1"], "strength": 0.5},
            {"kind": "inject", "heads": ["1.1"], "component": "v", "source": {"tokens": [{{{self}}}]}}
            """), m.Model));
        Assert.Contains("test.json: interventions[1] (inject): heads 1.1: injecting v into a query head of a grouped-query model cannot be combined with test.json: interventions[0] (soften)", e.Message);
        // on another head of the layer it composes
        using var other = RecipeApplication.Apply(R($$$"""
            {"kind": "soften", "heads": ["1.0"], "strength": 0.5},
            {"kind": "inject", "heads": ["1.1"], "component": "k", "source": {"tokens": [{{{self}}}]}}
            """), m.Model);
        Close(Run(m.Model, """{"kind": "soften", "heads": ["1.0"], "strength": 0.5}"""), other.Forward(ModelInput.Single(Ids)), 1e-5f);
        using var applied = RecipeApplication.Apply(R($$$"""{"kind": "inject", "heads": ["0.1"], "component": "k", "source": {"tokens": [{{{self}}}]}}"""), m.Model);
        var padded = ModelInput.Padded([Ids, Ids[..10]], padLeft: false);
        e = Assert.Throws<InvalidInputException>(() => applied.Forward(padded));
        Assert.Contains("interventions[0] (inject): injecting k into a query head of a grouped-query model needs unpadded inputs (sequence 1 has padding)", e.Message);
        // v has no position: a padded batch runs, padded keys unseen; the run's own values change nothing
        using var ownV = RecipeApplication.Apply(R($$$"""{"kind": "inject", "heads": ["0.1", "1.2"], "component": "v", "source": {"tokens": [{{{self}}}]}}"""), m.Model);
        Assert.Equal(m.Model.Forward(padded), ownV.Forward(padded));
        // left padding: layer 0's values depend on the token alone, so a source holding the second sequence's tokens at its
        // real indices gives it its own values there, whatever the source holds where the padding sits (never attended)
        var leftPadded = ModelInput.Padded([Ids, Ids[4..]], padLeft: true);
        var plain = m.Model.Forward(leftPadded);
        int half = plain.Length / 2;
        foreach (string pads in new[] { "5, 6, 7, 8", "40, 41, 42, 43" })
        {
            using var layer0 = RecipeApplication.Apply(R($$$"""{"kind": "inject", "heads": ["0.1"], "component": "v", "source": {"tokens": [{{{pads}}}, {{{string.Join(", ", Ids[4..])}}}]}}"""), m.Model);
            Assert.Equal(plain[half..], layer0.Forward(leftPadded)[half..]);
        }
    }

    [Theory]
    [InlineData("""{"kind": "scale", "heads": ["1.0", "2.0"], "factor": 2}""", "interventions[0] (scale): heads 2.0 does not exist")]
    [InlineData("""{"kind": "soften", "heads": ["0.4"], "strength": 0.5}""", "interventions[0] (soften): heads 0.4 does not exist")]
    [InlineData("""{"kind": "edit_ov", "head": "9.0", "remove": [0]}""", "interventions[0] (edit_ov): head 9.0 does not exist")]
    [InlineData("""{"kind": "edit_qk", "head": "1.0", "remove": [8]}""", "interventions[0] (edit_qk): remove component 8 does not exist: W_QK of head 1.0 has 8 singular components (0..7)")]
    [InlineData("""{"kind": "edit_ov", "head": "1.0", "scale": {"12": 2}}""", "interventions[0] (edit_ov): scale component 12 does not exist")]
    [InlineData("""{"kind": "redistribute_sink", "heads": ["1.0"], "fraction": 0.5, "sinks": [64]}""", "interventions[0] (redistribute_sink): sinks position 64")]
    [InlineData("""{"kind": "inject", "heads": ["1.0"], "component": "q", "source": {"tokens": [1, 500]}}""", "interventions[0] (inject): source token 500")]
    [InlineData("""{"kind": "inject", "heads": ["1.0"], "component": "q", "source": {"text": "hello"}}""", "interventions[0] (inject): source.text needs a tokenizer")]
    public void ItemsThatDoNotFitTheModelAreRefused(string item, string expected)
    {
        using var m = Golden("llama_gqa");
        var e = Assert.Throws<InvalidInputException>(() => RecipeApplication.Apply(R(item), m.Model));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ASourceOfAnotherLengthIsRefused()
    {
        using var m = Golden("gpt2_untied");
        using var applied = RecipeApplication.Apply(R("""{"kind": "inject", "heads": ["1.0"], "component": "v", "source": {"tokens": [1, 2, 3]}}"""), m.Model);
        var e = Assert.Throws<InvalidInputException>(() => applied.Forward(ModelInput.Single(Ids)));
        Assert.Contains("interventions[0] (inject): source has 3 tokens, the input 14", e.Message);
        e = Assert.Throws<InvalidInputException>(() => applied.RequireSourcesCover(5, generation: true));
        Assert.Contains("inject beyond the source's length is refused", e.Message);
        applied.RequireSourcesCover(3, generation: true);
    }

    [Theory]
    [InlineData("gpt2_untied", """{"kind": "soften", "heads": ["1.2", "2.0"], "strength": 0.6}""")]
    [InlineData("llama_gqa", """{"kind": "redistribute_sink", "heads": ["0.1", "1.3"], "fraction": 0.7, "sinks": [0, 1]}""")]
    [InlineData("llama_gqa", """{"kind": "scale", "heads": ["1.0"], "factor": 3}, {"kind": "edit_qk", "head": "0.2", "remove": [0, 1]}""")]
    [InlineData("gpt2_untied", """{"kind": "inject", "heads": ["1.1"], "component": "v", "source": {"tokens": [9, 9, 8, 7, 6, 5, 4, 3, 2, 1, 9, 8, 7, 6, 5, 4, 3, 2]}}""")]
    [InlineData("llama_gqa", """{"kind": "inject", "heads": ["1.1", "0.2"], "component": "k", "source": {"tokens": [9, 9, 8, 7, 6, 5, 4, 3, 2, 1, 9, 8, 7, 6, 5, 4, 3, 2]}}""")]
    [InlineData("llama_gqa", """{"kind": "inject", "heads": ["1.1"], "component": "v", "source": {"tokens": [9, 9, 8, 7, 6, 5, 4, 3, 2, 1, 9, 8, 7, 6, 5, 4, 3, 2]}}, {"kind": "ablate", "heads": ["1.1"], "method": "mean"}""")]
    public void GenerationWithTheKvCacheMatchesRecomputingUnderTheRecipe(string model, string items)
    {
        using var m = Golden(model);
        using var applied = RecipeApplication.Apply(R(items), m.Model);
        int[] prompt = [3, 17, 5, 9];
        var generated = Generator.Generate(applied.Model, prompt, new GenerationOptions { MaxNewTokens = 12, Hooks = applied.CreateHooks(generation: true) }).ToArray();
        // reference: the whole sequence recomputed under the recipe (no cache), greedy, one token at a time
        var seq = prompt.ToList();
        int V = applied.Model.Config.VocabSize;
        bool injects = items.Contains("inject");
        for (int i = 0; i < 12; i++)
        {
            var hooks = applied.CreateHooks(generation: injects); // a prefix of the source
            var logits = applied.Model.Forward(ModelInput.Single(seq.ToArray()), hooks).AsSpan((seq.Count - 1) * V, V);
            int best = 0;
            for (int v = 1; v < V; v++)
            {
                best = logits[v] > logits[best] ? v : best;
            }
            seq.Add(best);
        }
        Assert.Equal(seq.Skip(prompt.Length).ToArray(), generated);
    }

    [Fact]
    public void RecipesBuiltInCodeGetTheSameChecks()
    {
        using var m = Golden("gpt2_untied");
        var soft = new Recipe("code", [new SoftenHeads([new HeadId(1, 1)], 1.5)]);
        var e = Assert.Throws<InvalidInputException>(() => RecipeApplication.Apply(soft, m.Model));
        Assert.Contains("recipe: interventions[0] (soften): strength 1.5 is outside [0, 1]", e.Message);
        var nan = new Recipe("code", [new ScaleHeads([new HeadId(1, 1)], double.NaN)]);
        Assert.Throws<InvalidInputException>(() => RecipeApplication.Apply(nan, m.Model));
    }

    [Fact]
    public void EveryKindRunsOnStories260K()
    {
        string dir = TestPaths.RequireStories260K();
        using var m = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var tok = m.RequireTokenizer();
        var ids = tok.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside");
        double clean = Nll(m.Model, m.Model.Forward(ModelInput.Single(ids)), ids);
        string self = string.Join(", ", ids);
        foreach (var items in new[]
        {
            """{"kind": "scale", "heads": ["3.6", "4.1"], "factor": 0}""",
            """{"kind": "ablate", "heads": ["1.4", "3.6"], "method": "mean"}""",
            """{"kind": "soften", "heads": ["2.0", "2.1", "2.2"], "strength": 0.8}""",
            """{"kind": "redistribute_sink", "heads": ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7"], "fraction": 0.9, "sinks": [0]}""",
            """{"kind": "inject", "heads": ["1.0", "2.5", "3.3"], "component": "q", "source": {"text": "A big dog ran to the park with the red ball. He was happy and sad"}}""",
            """{"kind": "inject", "heads": ["1.0", "2.5"], "component": "k", "source": {"text": "A big dog ran to the park with the red ball. He was happy and sad"}}""",
            """{"kind": "inject", "heads": ["3.3", "4.6"], "component": "v", "source": {"text": "A big dog ran to the park with the red ball. He was happy and sad"}}""",
            """{"kind": "edit_ov", "head": "3.6", "remove": [0, 1, 2]}""",
            """{"kind": "edit_qk", "head": "2.3", "scale": {"0": 4}}""",
        })
        {
            using var applied = RecipeApplication.Apply(R(items), m.Model, t => tok.Encode(t));
            applied.RequireSourcesCover(ids.Length, generation: false); // the source text is 26 tokens, as the input
            double nll = Nll(applied.Model, applied.Forward(ModelInput.Single(ids)), ids);
            Assert.True(Math.Abs(nll - clean) > 1e-5, $"{items}: {nll} vs clean {clean}");
        }
        // a run's own queries change nothing
        Assert.Equal(m.Model.Forward(ModelInput.Single(ids)),
            Run(m.Model, """{"kind": "inject", "heads": ["4.7"], "component": "q", "source": {"tokens": [""" + self + "]}}", ids));
        // nor its own keys or values, though each kv head serves two query heads (recomputed by the same kernel: bitwise)
        Assert.Equal(m.Model.Forward(ModelInput.Single(ids)),
            Run(m.Model, """{"kind": "inject", "heads": ["2.3"], "component": "k", "source": {"tokens": [""" + self + "]}}, " +
                """{"kind": "inject", "heads": ["4.6"], "component": "v", "source": {"tokens": [""" + self + "]}}", ids));
    }
}
