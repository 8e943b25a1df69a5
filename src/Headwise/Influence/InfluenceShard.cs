using System.Globalization;
using Headwise.Analysis;
using Headwise.Models;

namespace Headwise.Influence;

/// <summary>What <see cref="InfluenceShard.Run"/> did: the part it wrote (or found complete and skipped) and its documents.</summary>
public sealed record InfluenceShardResult(string Part, bool Skipped, int Documents, int Tokens);

/// <summary>
/// One shard of an influence run: documents i with i mod N = shard, scored and written to <c>part-IIIII-of-NNNNN.parquet</c>.
/// The part is written under a temporary name and renamed when complete; a part already complete for the same run is skipped,
/// so re-running after a failure (or a requeued Slurm task) recomputes only what is missing and gives the same file.
/// </summary>
public static class InfluenceShard
{
    /// <param name="encode">text → ids, as <c>eval --text-file</c> encodes it (BOS prepended when the tokenizer adds one)</param>
    /// <param name="modelName">names the model in the metadata (parts of one run must agree)</param>
    /// <param name="headsSource">how the heads were chosen, e.g. "given" or "auto: top 3% retrieval"</param>
    /// <param name="progress">documents scored so far and the shard's total</param>
    public static InfluenceShardResult Run(TransformerModel model, Func<string, int[]> encode, Corpus corpus, IReadOnlyList<HeadId> heads,
        string modelName, string headsSource, string outDir, int shard, int shards, int batchTokens = 4096,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancel = default)
    {
        var docs = corpus.ReadShard(shard, shards);
        long corpusDocuments = corpus.CountedDocuments;
        var info = new InfluenceRunInfo(modelName, string.Join(",", heads.Distinct().Order()), headsSource, corpus.Path, corpus.TextField,
            corpus.IdField, corpusDocuments);
        Directory.CreateDirectory(outDir);
        string part = Path.Combine(outDir, InfluenceParts.PartName(shard, shards));
        if (InfluenceParts.ReadInfoIfComplete(part) is { } existing)
        {
            if (existing.Mismatch(info) is { } why)
            {
                throw new InvalidInputException($"{part}: exists from a different run ({why}); use another --out or delete it");
            }
            return new InfluenceShardResult(part, Skipped: true, docs.Count, 0);
        }
        var encoded = docs.Select(d => (d.Id, encode(d.Text))).ToArray();
        using var scorer = new InfluenceScorer(model, heads, batchTokens);
        var scores = docs.Count == 0 ? [] : scorer.Score(encoded, progress is null ? null : new Progress(progress, docs.Count), cancel);
        var metadata = info.ToMetadata();
        metadata["headwise.shard"] = $"{shard}/{shards}";
        metadata["headwise.documents"] = docs.Count.ToString(CultureInfo.InvariantCulture);
        InfluenceParts.Write(part, scores, metadata);
        return new InfluenceShardResult(part, Skipped: false, docs.Count, encoded.Sum(e => e.Item2.Length));
    }

    // documents done → (done, total), synchronously (System.Progress would post to the thread pool)
    private sealed class Progress(IProgress<(int Done, int Total)> inner, int total) : IProgress<int>
    {
        public void Report(int value) => inner.Report((value, total));
    }
}
