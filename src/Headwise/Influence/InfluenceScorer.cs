using Headwise.Analysis;
using Headwise.Evaluation;
using Headwise.Hooks;
using Headwise.Interventions;
using Headwise.Models;

namespace Headwise.Influence;

/// <summary>
/// A document's AttentionInfluence: <see cref="LossRef"/> is its mean next-token nll (what <c>headwise eval</c> reports, sliding
/// window included), <see cref="LossMasked"/> the same with the heads zero-ablated (what <c>eval --intervene</c> reports for an
/// <c>ablate</c>/<c>zero</c> recipe of those heads), and <see cref="Score"/> = (loss_masked − loss_ref) / loss_ref.
/// </summary>
public sealed record InfluenceScore(string Id, int NTokens, double LossRef, double LossMasked)
{
    public double Score => (LossMasked - LossRef) / LossRef;
}

/// <summary>
/// Scores documents by AttentionInfluence with a set of heads zero-ablated. Documents are cut into the windows
/// <see cref="Perplexity.Windows"/> gives them, and windows of similar length (sorted by length) run together as one right-padded
/// batch of at most <c>batchTokens</c> positions, so the forward runs at the engine's prefill speed however short the documents.
/// Each batch runs twice: plainly, and from the lowest ablated layer's <c>hook_resid_pre</c> (the layers below are the same in
/// both runs) under the recipe's hooks. Shapes: B windows in a batch, T the longest, V vocab, C d_model.
/// </summary>
public sealed class InfluenceScorer : IDisposable
{
    private readonly TransformerModel _model;
    private readonly RecipeApplication _ablation;
    private readonly int _firstLayer;   // the lowest ablated layer: the masked run resumes there
    private readonly int _window, _stride, _batchTokens;

    /// <param name="window">context of each window (default: the model's context), as <c>eval --window</c></param>
    /// <param name="stride">how far windows advance (default: window / 2), as <c>eval --stride</c></param>
    /// <param name="batchTokens">positions per forward (B·T, padding included); a window longer than that runs alone</param>
    public InfluenceScorer(TransformerModel model, IReadOnlyList<HeadId> heads, int batchTokens = 4096, int? window = null, int? stride = null)
    {
        if (heads.Count == 0)
        {
            throw new InvalidInputException("influence needs at least one head to ablate");
        }
        if (batchTokens < 1)
        {
            throw new InvalidInputException($"batch tokens must be at least 1 (got {batchTokens})");
        }
        _model = model;
        Heads = [.. heads.Distinct().Order()];
        Recipe = new Recipe("influence", [new AblateHeads(Heads, Mean: false)]) { Source = "influence heads " + string.Join(",", Heads) };
        _ablation = RecipeApplication.Apply(Recipe, model); // checks the heads exist
        _firstLayer = Heads.Min(h => h.Layer);
        _window = window ?? model.Config.MaxPositions;
        _stride = stride ?? Math.Max(1, _window / 2);
        _batchTokens = batchTokens;
    }

    /// <summary>The ablated heads, sorted.</summary>
    public IReadOnlyList<HeadId> Heads { get; }

    /// <summary>The <c>ablate</c>/<c>zero</c> recipe of <see cref="Heads"/> that <c>loss_masked</c> runs under.</summary>
    public Recipe Recipe { get; }

    public void Dispose() => _ablation.Dispose();

    /// <summary>Scores each document (token ids, as <c>eval</c> encodes its text); results in the order given. A document of
    /// fewer than 2 tokens is refused, naming it. <paramref name="progress"/> gets the number of documents finished.</summary>
    public InfluenceScore[] Score(IReadOnlyList<(string Id, int[] Ids)> documents, IProgress<int>? progress = null, CancellationToken cancel = default)
    {
        int D = documents.Count, V = _model.Config.VocabSize, C = _model.Config.DModel;
        var nllRef = new float[D][];
        var nllMasked = new float[D][];
        var windowsLeft = new int[D];
        var items = new List<(int Doc, Perplexity.Window W)>();
        for (int d = 0; d < D; d++)
        {
            var ids = documents[d].Ids;
            if (ids.Length < 2)
            {
                throw new InvalidInputException($"document '{documents[d].Id}' has {ids.Length} token{(ids.Length == 1 ? "" : "s")}: need at least 2 to score a prediction");
            }
            Perplexity.Check(_model, ids, _window, _stride);
            nllRef[d] = new float[ids.Length - 1];
            nllMasked[d] = new float[ids.Length - 1];
            foreach (var w in Perplexity.Windows(ids.Length, _window, _stride))
            {
                items.Add((d, w));
                windowsLeft[d]++;
            }
        }
        // longest first, so a batch's padding is at most the spread of lengths within it (stable: ties keep corpus order)
        var order = items.OrderByDescending(it => it.W.End - it.W.Begin).ToArray();

        float[] resid = [];
        var refHooks = new HookSet(_model.Config.NLayers);
        refHooks.Add(new HookPoint(_firstLayer, HookKind.ResidPre), a => a.Data.Span.CopyTo(resid), observeOnly: true);
        var maskedHooks = _ablation.CreateHooks();
        // only the rows a window scores are unembedded (LogitRows): a window after the first scores the part no earlier window
        // did, and no row predicts past the text. One logits buffer of the largest batch serves every batch.
        float[] logitsRef = [], logitsMasked = [];
        int done = 0;
        for (int start = 0; start < order.Length;)
        {
            cancel.ThrowIfCancellationRequested();
            int T = order[start].W.End - order[start].W.Begin;
            int B = Math.Max(1, Math.Min(order.Length - start, _batchTokens / T));
            var batch = order.AsSpan(start, B).ToArray();
            var input = ModelInput.Padded(batch.Select(it => documents[it.Doc].Ids[it.W.Begin..it.W.End]).ToArray(), padLeft: false);
            if (resid.Length != B * T * C)
            {
                resid = new float[B * T * C]; // (B, T, C) blocks.{first}.hook_resid_pre
            }
            var rowStart = new int[B];
            var rowCount = new int[B];
            for (int b = 0; b < B; b++)
            {
                (rowStart[b], rowCount[b]) = Perplexity.TargetRows(batch[b].W);
            }
            var rows = new LogitRows(rowStart, rowCount);
            logitsRef = _model.Forward(input, refHooks, rows, logitsRef);                                    // (R, V)
            logitsMasked = _model.ForwardFrom(_firstLayer, resid, input, maskedHooks, rows, logitsMasked); // (R, V)
            for (int b = 0, r = 0; b < B; r += rowCount[b], b++)
            {
                var (d, w) = batch[b];
                Perplexity.ScoreTargets(logitsRef.AsSpan(r * V, rowCount[b] * V), V, documents[d].Ids, w, nllRef[d]);
                Perplexity.ScoreTargets(logitsMasked.AsSpan(r * V, rowCount[b] * V), V, documents[d].Ids, w, nllMasked[d]);
                if (--windowsLeft[d] == 0)
                {
                    done++;
                }
            }
            progress?.Report(done);
            start += B;
        }
        var scores = new InfluenceScore[D];
        for (int d = 0; d < D; d++)
        {
            scores[d] = new InfluenceScore(documents[d].Id, documents[d].Ids.Length,
                Perplexity.Result(nllRef[d], 0).MeanNll, Perplexity.Result(nllMasked[d], 0).MeanNll);
        }
        return scores;
    }
}
