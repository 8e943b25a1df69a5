using System.Text.Json;
using Headwise.Analysis.Circuits;
using Headwise.Analysis.Statistics;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Tests.Acceptance;

/// <summary>circuits, stats, sinks, centrality and explain on the real model stories260K (5 layers × 8 heads).</summary>
public class WeightsCliTests
{
    private const string Ids = "1,403,407,261,378,432,1017,372,1299,267,29871,1";

    private static string Model() => Path.Combine(CliRunner.RequireStories260K(), "stories260K.bin");

    private static int[] Tokens => Ids.Split(',').Select(int.Parse).Select(i => i % 512).ToArray();
    private static string TokenArg => string.Join(",", Tokens);

    private static JsonElement Json(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement;
    }

    [Fact]
    public void CircuitsJsonMatchesTheLibrary()
    {
        string model = Model();
        var root = Json(CliRunner.Run("circuits", "--model", model, "--json"));
        var heads = root.GetProperty("heads").EnumerateArray().ToArray();
        Assert.Equal(40, heads.Length);
        foreach (var h in heads)
        {
            var sv = h.GetProperty("qk_singular_values").EnumerateArray().Select(e => e.GetDouble()).ToArray();
            Assert.Equal(8, sv.Length);
            Assert.Equal(sv.OrderDescending(), sv);
            Assert.InRange(h.GetProperty("copying_score").GetDouble(), -1, 1);
        }
        var k = root.GetProperty("composition").GetProperty("K");
        var scores = k.GetProperty("scores").EnumerateArray().Select(r => r.EnumerateArray().ToArray()).ToArray();
        Assert.Equal(40, scores.Length);
        Assert.Equal(JsonValueKind.Null, scores[8][0].ValueKind);    // 1.0 → 0.0: not earlier
        Assert.Equal(JsonValueKind.Null, scores[0][1].ValueKind);    // 0.0 → 0.1: same layer

        using var m = ModelLoader.Load(model);
        var lib = CircuitAnalysis.Compute(m.Model, new CircuitOptions(CopyingScores: false));
        Assert.Equal(lib.K![new(0, 3), new(2, 5)], scores[3][21].GetDouble(), 12);
        var top = k.GetProperty("top").EnumerateArray().First();
        var want = lib.K.Top(1)[0];
        Assert.Equal(want.From.ToString(), top.GetProperty("from").GetString());
        Assert.Equal(want.To.ToString(), top.GetProperty("to").GetString());

        var text = CliRunner.Run("circuits", "--model", model, "--head", "4.0", "--top", "3");
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("4.0", text.Stdout);
        Assert.Contains("top K-composition", text.Stdout);
        Assert.Equal(2, CliRunner.Run("circuits", "--model", model, "--head", "9.9").ExitCode);
    }

    [Fact]
    public void StatsJsonShapesAndInvariants()
    {
        string model = Model();
        var root = Json(CliRunner.Run("stats", "--model", model, "--tokens", TokenArg, "--json"));
        int T = Tokens.Length;
        var erank = root.GetProperty("effective_rank").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
        Assert.Equal(5, erank.Length);
        Assert.All(erank.SelectMany(x => x), v => Assert.InRange(v, 1 - 1e-6, T + 1e-6));
        var layers = root.GetProperty("layer_similarity").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(1, layers[i][i], 9);
            for (int j = 0; j < 5; j++)
            {
                Assert.Equal(layers[i][j], layers[j][i], 12);
                Assert.InRange(layers[i][j], 0, 1);
            }
        }
        // the clusters partition the 40 heads
        var clustered = root.GetProperty("clusters").EnumerateArray().SelectMany(c => c.EnumerateArray().Select(e => e.GetString())).ToArray();
        Assert.Equal(40, clustered.Length);
        Assert.Equal(40, clustered.Distinct().Count());
        Assert.Contains("Effective rank", CliRunner.Run("stats", "--model", model, "--tokens", TokenArg).Stdout);
        Assert.Equal(2, CliRunner.Run("stats", "--model", model, "--tokens", TokenArg, "--text", "x").ExitCode);
    }

    [Fact]
    public void SinksAndCentralityJson()
    {
        string model = Model();
        var sinks = Json(CliRunner.Run("sinks", "--model", model, "--tokens", TokenArg, "--ratio", "1", "--mass", "0", "--json"));
        var layers = sinks.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(5, layers.Length);
        int minQueries = AttentionSinks.MinLaterQueries(Tokens.Length);
        foreach (var l in layers)
        {
            Assert.True(l.GetProperty("median_resid_norm").GetDouble() > 0);
            foreach (var s in l.GetProperty("sinks").EnumerateArray())
            {
                Assert.True(s.GetProperty("ratio").GetDouble() >= 1);
                Assert.True(s.GetProperty("position").GetInt32() < Tokens.Length - minQueries + 0);
            }
        }
        Assert.Contains("sink", CliRunner.Run("sinks", "--model", model, "--tokens", TokenArg).Stdout);

        const double alpha = 0.5;
        var c = Json(CliRunner.Run("centrality", "--model", model, "--tokens", TokenArg, "--alpha", "0.5", "--json"));
        var cent = c.GetProperty("centrality").EnumerateArray().Select(r => r.EnumerateArray().Select(e => e.GetDouble()).ToArray()).ToArray();
        Assert.Equal(5, cent.Length);
        foreach (var layer in cent)
        {
            Assert.Equal(Tokens.Length, layer.Length);
            Assert.Equal(Tokens.Length * alpha / (1 - alpha), layer.Sum(), 6); // every row of A sums to 1
        }
        Assert.Equal(2, CliRunner.Run("centrality", "--model", model, "--tokens", TokenArg, "--alpha", "1").ExitCode);
    }

    [Fact]
    public void ExplainJsonAgreesWithTheModel()
    {
        string model = Model();
        var root = Json(CliRunner.Run("explain", "--model", model, "--tokens", TokenArg, "--json"));
        double[] Arr(string name) => root.GetProperty(name).EnumerateArray().Select(e => e.GetDouble()).ToArray();
        var att = Arr("attention");
        var loo = Arr("leave_one_out");
        Assert.Equal(Tokens.Length, loo.Length);
        Assert.Equal(1, att.Sum(), 5);
        Assert.Equal(1, Arr("rollout").Sum(), 5);
        Assert.Equal(RankCorrelation.KendallTauB(att, loo), root.GetProperty("attention_vs_loo").GetProperty("kendall_tau_b").GetDouble(), 12);
        Assert.Equal(RankCorrelation.SpearmanRho(att, loo), root.GetProperty("attention_vs_loo").GetProperty("spearman_rho").GetDouble(), 12);

        // the predicted token is the model's argmax, and removing token 3 changes its log-probability by the reported amount
        using var m = ModelLoader.Load(model);
        int V = m.Config.VocabSize, T = Tokens.Length;
        var logits = m.Model.Forward(ModelInput.Single(Tokens)).AsSpan((T - 1) * V, V).ToArray();
        int predicted = Array.IndexOf(logits, logits.Max());
        Assert.Equal(predicted, root.GetProperty("predicted").GetInt32());
        var without = Tokens.Where((_, i) => i != 3).ToArray();
        var logits2 = m.Model.Forward(ModelInput.Single(without)).AsSpan((T - 2) * V, V).ToArray();
        static double LogSoftmax(float[] l, int i)
        {
            double max = l.Max();
            return l[i] - max - Math.Log(l.Sum(x => Math.Exp(x - max)));
        }
        Assert.Equal(LogSoftmax(logits, predicted) - LogSoftmax(logits2, predicted), loo[3], 4);
        Assert.Contains("Kendall", CliRunner.Run("explain", "--model", model, "--tokens", TokenArg).Stdout);
    }
}
