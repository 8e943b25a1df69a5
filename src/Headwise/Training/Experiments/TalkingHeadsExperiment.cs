using Headwise.Analysis;
using Headwise.Analysis.Circuits;
using Headwise.Compute;
using Headwise.Hooks;
using Headwise.Interventions;
using Headwise.Loading;
using Headwise.Models;
using MathNet.Numerics.LinearAlgebra;
using EditCircuit = Headwise.Interventions.HeadCircuit;

namespace Headwise.Training.Experiments;

/// <summary>Settings of <see cref="TalkingHeadsExperiment"/>: the list-recall training (<see cref="ListRecallOptions"/>
/// with these steps and seed), the held-out lists per position of the left-out item, the factor that amplifies the channel,
/// and how the channel is cut: the fewest components carrying <paramref name="ChannelShare"/> of the composition, at most
/// <paramref name="MaxChannel"/>.</summary>
public sealed record TalkingHeadsOptions(int Steps = 1500, int Seed = 0, int EvalPerPosition = 200, double AmplifyFactor = 2.0,
    double ChannelShare = 0.5, int MaxChannel = 4)
{
    public ListRecallOptions Training => new(Steps: Steps, Seed: Seed);
}

/// <summary>A writer (layer 0) → reader (layer 1) pair with its Q- and K-composition scores (CircuitAnalysis).</summary>
public sealed record HeadPairComposition(HeadId Writer, HeadId Reader, double QComposition, double KComposition);

/// <summary>One singular component (0 = largest) of a head's raw W_OV or W_QK and its share of the channel between the heads.</summary>
public sealed record ChannelComponent(int Index, double SingularValue, double Share);

/// <summary>Held-out list recall of one model: accuracy, accuracy by the left-out item's first-list position, and the mean
/// loss on the answer.</summary>
public sealed record ListRecallScore(double Accuracy, double[] AccuracyByPosition, double AnswerLoss);

/// <summary>One edit of the trained model (a recipe written to DIR/recipes/<paramref name="Name"/>.json) and its score.</summary>
public sealed record TalkingHeadsEdit(string Name, string Description, string Recipe, ListRecallScore Score);

/// <summary>What <see cref="TalkingHeadsExperiment.Run"/> found.</summary>
/// <param name="Composition">"Q" or "K": which side of the reader's W_QK the writer's output feeds most.</param>
/// <param name="WriterComponents">The writer's raw W_OV components with their share of ‖W_OV·R‖²_F (R the reader's W_QK,
/// or its transpose for K); <paramref name="Channel"/> the components removed/amplified, <paramref name="Control"/> as many
/// of the largest other ones.</param>
/// <param name="ReaderComponents">The reader's raw W_QK components with their share of what they read from the channel.</param>
public sealed record TalkingHeadsResult(TalkingHeadsOptions Options, ListRecallResult Training, IReadOnlyList<HeadPairComposition> Pairs,
    HeadId Writer, HeadId Reader, string Composition, double CompositionScore,
    IReadOnlyList<ChannelComponent> WriterComponents, int[] Channel, int[] Control,
    IReadOnlyList<ChannelComponent> ReaderComponents, int[] ReaderChannel, int[] ReaderControl,
    ListRecallScore Original, IReadOnlyList<TalkingHeadsEdit> Edits, IReadOnlyList<HeadAblation> HeadAblations, double Seconds);

/// <summary>Held-out accuracy with one head's output zeroed.</summary>
public sealed record HeadAblation(HeadId Head, double Accuracy);

/// <summary>
/// Talking Heads (Merullo et al.), on the list-recall model: a layer-0 head writes into a low-rank subspace of the residual
/// stream that a layer-1 head's QK reads. The experiment trains <see cref="ListRecallExperiment"/>'s model, exports it as a
/// Hugging Face checkpoint (DIR/model) and loads it in the engine; picks the writer/reader pair of largest Q- or
/// K-composition; decomposes the writer's raw W_OV = W_V·W_O = Σ s_i u_i v_iᵀ and gives component i the share
/// s_i²‖v_iᵀ·R‖² / ‖W_OV·R‖²_F of the composition (R = the reader's W_QK with its LayerNorm folded, transposed for
/// K-composition; the shares sum to 1 since the u_i are orthonormal); the channel is the fewest components carrying half of it.
/// On the reader's side, component j of its raw W_QK = Σ σ_j a_j b_jᵀ reads the channel by σ_j² Σ_{i∈channel} s_i² (d_i·b_j)²
/// (a_j for Q), with d_i = γ ⊙ centre(v_i) the channel direction as the reader's LayerNorm passes it.
/// Then edit_ov / edit_qk recipes remove or amplify those components (and, as a control, remove as many of the largest other
/// components), each applied through <see cref="RecipeApplication"/>, and held-out accuracy is measured overall and by the
/// left-out item's position in the first list.
/// </summary>
public static class TalkingHeadsExperiment
{
    public static TalkingHeadsResult Run(TalkingHeadsOptions o, string dir, IProgress<AnalysisProgress>? progress = null, CancellationToken ct = default)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (training, trained) = ListRecallExperiment.Train(o.Training, progress, ct);
        string modelDir = Path.Combine(dir, "model");
        trained.SaveHf(modelDir);
        using var loaded = ModelLoader.Load(modelDir);
        var model = loaded.Model;
        int n = o.Training.ListLength;
        var task = new ListRecallTask(o.Training.Items, n);
        var evalSet = HeldOut(task, o.EvalPerPosition, o.Seed);

        // 1. the pair: largest Q- or K-composition from a layer-0 head to a layer-1 head
        var circuits = CircuitAnalysis.Compute(model, new CircuitOptions(SingularValues: false, CopyingScores: false), cancel: ct);
        var pairs = new List<HeadPairComposition>();
        int NH = model.Config.NHeads;
        for (int w = 0; w < NH; w++)
        {
            for (int r = 0; r < NH; r++)
            {
                HeadId writer = new(0, w), reader = new(1, r);
                pairs.Add(new HeadPairComposition(writer, reader, circuits.Q![writer, reader], circuits.K![writer, reader]));
            }
        }
        var best = pairs.MaxBy(p => Math.Max(p.QComposition, p.KComposition))!;
        bool keys = best.KComposition >= best.QComposition;

        // 2. the channel through the writer's OV and the reader's QK
        var (writerComponents, readerComponents) = Channel(model, best.Writer, best.Reader, keys, o.ChannelShare, o.MaxChannel, out var channel, out var readerChannel);
        var control = LargestOthers(writerComponents, channel);
        var readerControl = LargestOthers(readerComponents, readerChannel);

        // 3. the edits, as recipe files, each through RecipeApplication
        var original = Evaluate(model, null, evalSet, task);
        var recipes = new List<(string Name, string Description, Recipe Recipe)>
        {
            ("ov-remove-channel", $"edit_ov {best.Writer}: remove the channel components {Join(channel)}", Edit(EditCircuit.Ov, best.Writer, channel, null)),
            ("ov-amplify-channel", $"edit_ov {best.Writer}: scale the channel components {Join(channel)} × {o.AmplifyFactor}", Edit(EditCircuit.Ov, best.Writer, [], (channel, o.AmplifyFactor))),
            ("ov-remove-control", $"edit_ov {best.Writer}: remove the control components {Join(control)} (the largest outside the channel)", Edit(EditCircuit.Ov, best.Writer, control, null)),
            ("qk-remove-channel", $"edit_qk {best.Reader}: remove the reading components {Join(readerChannel)}", Edit(EditCircuit.Qk, best.Reader, readerChannel, null)),
            ("qk-amplify-channel", $"edit_qk {best.Reader}: scale the reading components {Join(readerChannel)} × {o.AmplifyFactor}", Edit(EditCircuit.Qk, best.Reader, [], (readerChannel, o.AmplifyFactor))),
            ("qk-remove-control", $"edit_qk {best.Reader}: remove the control components {Join(readerControl)}", Edit(EditCircuit.Qk, best.Reader, readerControl, null)),
            ("ablate-writer", $"ablate {best.Writer} (zero): the whole writer", new Recipe("ablate-writer", [new AblateHeads([best.Writer], Mean: false)])),
            ("ablate-reader", $"ablate {best.Reader} (zero): the whole reader", new Recipe("ablate-reader", [new AblateHeads([best.Reader], Mean: false)])),
        };
        string recipeDir = Path.Combine(dir, "recipes");
        Directory.CreateDirectory(recipeDir);
        var edits = new List<TalkingHeadsEdit>();
        foreach (var (name, description, recipe) in recipes)
        {
            ct.ThrowIfCancellationRequested();
            string file = Path.Combine(recipeDir, name + ".json");
            recipe.Save(file);
            var loadedRecipe = Recipe.Load(file); // run exactly what `headwise eval --intervene` would read
            using var applied = RecipeApplication.Apply(loadedRecipe, model);
            edits.Add(new TalkingHeadsEdit(name, description, Path.GetRelativePath(dir, file), Evaluate(applied.Model, applied.CreateHooks(), evalSet, task)));
        }

        // every head zero-ablated, for context: which heads the task needs at all
        var ablations = new List<HeadAblation>();
        for (int l = 0; l < model.Config.NLayers; l++)
        {
            for (int h = 0; h < NH; h++)
            {
                using var applied = RecipeApplication.Apply(new Recipe("ablate", [new AblateHeads([new HeadId(l, h)], Mean: false)]), model);
                ablations.Add(new HeadAblation(new HeadId(l, h), Evaluate(applied.Model, applied.CreateHooks(), evalSet, task).Accuracy));
            }
        }

        return new TalkingHeadsResult(o, training, pairs, best.Writer, best.Reader, keys ? "K" : "Q",
            keys ? best.KComposition : best.QComposition, writerComponents, channel, control, readerComponents, readerChannel,
            readerControl, original, edits, ablations, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Held-out lists, <paramref name="perPosition"/> with the left-out item at each first-list position, in
    /// position order (seeded apart from the training and evaluation streams of <see cref="ListRecallExperiment"/>).</summary>
    public static TokenExample[] HeldOut(ListRecallTask task, int perPosition, int seed)
    {
        var rng = new Random(seed + 7_000_001);
        return [.. Enumerable.Range(0, task.ListLength).SelectMany(p => Enumerable.Range(0, perPosition).Select(_ => task.Sample(rng, p)))];
    }

    /// <summary>One batched forward of <paramref name="set"/> (with <paramref name="hooks"/>, e.g. a recipe's): accuracy of the
    /// answer's argmax, by left-out position, and the mean cross-entropy of the answer.</summary>
    public static ListRecallScore Evaluate(TransformerModel model, HookSet? hooks, TokenExample[] set, ListRecallTask task)
    {
        int T = set[0].Tokens.Length, V = model.Config.VocabSize, n = task.ListLength;
        var logits = model.Forward(new ModelInput([.. set.SelectMany(e => e.Tokens)], set.Length, T), hooks); // (B, T, V)
        var correct = new int[n];
        var count = new int[n];
        double loss = 0;
        for (int b = 0; b < set.Length; b++)
        {
            var row = logits.AsSpan(((b * T) + T - 1) * V, V);
            int answer = set[b].Targets[^1], p = task.MissingPosition(set[b]);
            count[p]++;
            correct[p] += Generation.Sampler.ArgMax(row) == answer ? 1 : 0;
            loss += Kernels.LogSumExp(row) - row[answer];
        }
        return new ListRecallScore((double)correct.Sum() / set.Length,
            [.. Enumerable.Range(0, n).Select(p => count[p] == 0 ? double.NaN : (double)correct[p] / count[p])], loss / set.Length);
    }

    /// <summary>
    /// The channel from <paramref name="writer"/>'s raw W_OV into <paramref name="reader"/>'s QK (keys when
    /// <paramref name="keys"/>, else queries): every component of both with its share (see the class summary), and the
    /// channel on each side — the fewest components, largest share first, whose shares add up to <paramref name="share"/>,
    /// at most <paramref name="max"/>.
    /// </summary>
    public static (ChannelComponent[] Writer, ChannelComponent[] Reader) Channel(TransformerModel model, HeadId writer, HeadId reader,
        bool keys, double share, int max, out int[] channel, out int[] readerChannel)
    {
        var wa = model.GetAttentionWeights(writer.Layer);
        var ra = model.GetAttentionWeights(reader.Layer);
        int C = wa.DModel, HD = wa.DHead;
        var ov = Raw(wa.V(wa.KvHeadOf(writer.Head)), C, HD) * Raw(wa.O(writer.Head), HD, C);         // W_V·W_O (C, C)
        var qkRaw = Raw(ra.Q(reader.Head), C, HD) * Raw(ra.K(ra.KvHeadOf(reader.Head)), C, HD).Transpose(); // W_Q·W_Kᵀ (C, C)
        var folded = HeadWeights.Read(model)[reader.Layer][reader.Head];
        var readQk = folded.WQ * folded.WK.Transpose();                                               // what the reader reads, norm folded
        var read = keys ? readQk.Transpose() : readQk;

        var ovSvd = ov.Svd(computeVectors: true);
        var writerWeight = new double[HD];
        for (int i = 0; i < HD; i++)
        {
            double through = (ovSvd.VT.Row(i).ToRowMatrix() * read).FrobeniusNorm(); // ‖v_iᵀ·R‖, v_i the output direction
            writerWeight[i] = ovSvd.S[i] * ovSvd.S[i] * through * through;
        }
        var writerComponents = Shares(ovSvd.S, writerWeight, HD);
        channel = Cut(writerComponents, share, max);

        // the reader's side: the channel directions as its LayerNorm passes them (centred, × γ), against its raw QK's key (or
        // query) singular vectors
        var norm = model.AttentionNorm(reader.Layer);
        bool center = norm.Kind == NormKind.LayerNorm;
        var qkSvd = qkRaw.Svd(computeVectors: true);
        var readerWeight = new double[HD];
        foreach (int i in channel)
        {
            var v = ovSvd.VT.Row(i);
            double mean = center ? v.Average() : 0;
            var d = Vector<double>.Build.Dense(C, c => norm.Weight[c] * (v[c] - mean));
            for (int j = 0; j < HD; j++)
            {
                var side = keys ? qkSvd.VT.Row(j) : qkSvd.U.Column(j);
                double dot = d.DotProduct(side);
                readerWeight[j] += ovSvd.S[i] * ovSvd.S[i] * qkSvd.S[j] * qkSvd.S[j] * dot * dot;
            }
        }
        var readerComponents = Shares(qkSvd.S, readerWeight, HD);
        readerChannel = Cut(readerComponents, share, max);
        return (writerComponents, readerComponents);
    }

    // a row-major (rows, cols) float block as a matrix
    private static Matrix<double> Raw(ReadOnlySpan<float> w, int rows, int cols)
    {
        var copy = w.ToArray();
        return Matrix<double>.Build.Dense(rows, cols, (r, c) => copy[r * cols + c]);
    }

    private static ChannelComponent[] Shares(Vector<double> s, double[] weight, int count)
    {
        double total = weight.Sum();
        return [.. Enumerable.Range(0, count).Select(i => new ChannelComponent(i, s[i], total > 0 ? weight[i] / total : 0))];
    }

    // the fewest components, largest share first, reaching the share (at most max), in index order
    private static int[] Cut(ChannelComponent[] components, double share, int max)
    {
        var picked = new List<int>();
        double sum = 0;
        foreach (var c in components.OrderByDescending(c => c.Share))
        {
            if (sum >= share || picked.Count >= max)
            {
                break;
            }
            picked.Add(c.Index);
            sum += c.Share;
        }
        return [.. picked.Order()];
    }

    // as many components as the channel has, the largest (by singular value) outside it
    private static int[] LargestOthers(ChannelComponent[] components, int[] channel) =>
        [.. components.Where(c => !channel.Contains(c.Index)).OrderByDescending(c => c.SingularValue).Take(channel.Length).Select(c => c.Index).Order()];

    private static Recipe Edit(EditCircuit circuit, HeadId head, int[] remove, (int[] Components, double Factor)? scale)
    {
        var scales = scale is { } s ? s.Components.ToDictionary(i => i, _ => s.Factor) : new Dictionary<int, double>();
        string name = $"{(circuit == EditCircuit.Ov ? "edit_ov" : "edit_qk")} {head}";
        return new Recipe(name, [new EditWeights(circuit, head, remove, scales)]);
    }

    private static string Join(int[] components) => "[" + string.Join(", ", components) + "]";
}
