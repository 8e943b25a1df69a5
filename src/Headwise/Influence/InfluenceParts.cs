using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Parquet;
using Parquet.Schema;

namespace Headwise.Influence;

/// <summary>What a part or merged file was computed with, kept in its Parquet key-value metadata (keys <c>headwise.*</c>):
/// parts of one run must agree on everything but the shard.</summary>
public sealed record InfluenceRunInfo(string Model, string Heads, string HeadsSource, string Corpus, string TextField, string IdField,
    long CorpusDocuments)
{
    internal Dictionary<string, string> ToMetadata() => new()
    {
        ["headwise.model"] = Model,
        ["headwise.heads"] = Heads,
        ["headwise.heads_source"] = HeadsSource,
        ["headwise.corpus"] = Corpus,
        ["headwise.text_field"] = TextField,
        ["headwise.id_field"] = IdField,
        ["headwise.corpus_documents"] = CorpusDocuments.ToString(CultureInfo.InvariantCulture),
    };

    internal static InfluenceRunInfo FromMetadata(IReadOnlyDictionary<string, string> m, string file)
    {
        string Get(string key) => m.TryGetValue("headwise." + key, out var v) ? v
            : throw new InvalidInputException($"{file}: no headwise.{key} in the file's metadata (not written by headwise influence)");
        return new InfluenceRunInfo(Get("model"), Get("heads"), Get("heads_source"), Get("corpus"), Get("text_field"), Get("id_field"),
            long.Parse(Get("corpus_documents"), CultureInfo.InvariantCulture));
    }

    /// <summary>How this run differs from <paramref name="other"/> in what the scores depend on (model, heads), or null.</summary>
    public string? Mismatch(InfluenceRunInfo other) =>
        Model != other.Model ? $"model {Model} vs {other.Model}"
        : Heads != other.Heads ? $"heads {Heads} vs {other.Heads}"
        : Corpus != other.Corpus || CorpusDocuments != other.CorpusDocuments ? $"corpus {Corpus} ({CorpusDocuments} documents) vs {other.Corpus} ({other.CorpusDocuments} documents)"
        : null;
}

/// <summary>
/// The output files of <c>headwise influence</c>: one Parquet part per shard, <c>part-IIIII-of-NNNNN.parquet</c> with columns
/// id (string), n_tokens (int32), loss_ref, loss_masked, score (double) and the run's <see cref="InfluenceRunInfo"/> in the
/// file's metadata; and <see cref="Merge"/>'s <c>influence.parquet</c>. Every file is written under a temporary name
/// (<c>.NAME.tmp</c>, in the same directory) and renamed when complete, so a file under its final name is always whole, and a
/// re-run overwrites what a killed writer left.
/// </summary>
public static partial class InfluenceParts
{
    public const string MergedName = "influence.parquet";
    public const string TopName = "influence-top.jsonl";

    private static readonly DataField<string> IdColumn = new("id");
    private static readonly DataField<int> TokensColumn = new("n_tokens");
    private static readonly DataField<double> LossRefColumn = new("loss_ref");
    private static readonly DataField<double> LossMaskedColumn = new("loss_masked");
    private static readonly DataField<double> ScoreColumn = new("score");
    private static readonly ParquetSchema Schema = new(IdColumn, TokensColumn, LossRefColumn, LossMaskedColumn, ScoreColumn);

    public static string PartName(int shard, int shards) => $"part-{shard:D5}-of-{shards:D5}.parquet";

    /// <summary>The temporary name a file is written under before it is renamed to <paramref name="path"/>.</summary>
    public static string TempPath(string path) => System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path) ?? ".", "." + System.IO.Path.GetFileName(path) + ".tmp");

    [GeneratedRegex(@"^part-(\d{5})-of-(\d{5})\.parquet$")]
    private static partial Regex PartPattern();

    /// <summary>Writes <paramref name="rows"/> to <paramref name="path"/> atomically (temporary name, then rename).</summary>
    public static void Write(string path, IReadOnlyList<InfluenceScore> rows, IReadOnlyDictionary<string, string> metadata)
    {
        string temp = TempPath(path);
        WriteAsync().GetAwaiter().GetResult();
        File.Move(temp, path, overwrite: true);

        async Task WriteAsync()
        {
            await using var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None);
            await using (var writer = await ParquetWriter.CreateAsync(Schema, stream))
            {
                writer.CustomMetadata = new Dictionary<string, string>(metadata);
                using var group = writer.CreateRowGroup();
                await group.WriteAsync(IdColumn, rows.Select(r => r.Id).ToArray());
                await group.WriteAsync(TokensColumn, new ReadOnlyMemory<int>(rows.Select(r => r.NTokens).ToArray()));
                await group.WriteAsync(LossRefColumn, new ReadOnlyMemory<double>(rows.Select(r => r.LossRef).ToArray()));
                await group.WriteAsync(LossMaskedColumn, new ReadOnlyMemory<double>(rows.Select(r => r.LossMasked).ToArray()));
                await group.WriteAsync(ScoreColumn, new ReadOnlyMemory<double>(rows.Select(r => r.Score).ToArray()));
            }
            stream.Flush(flushToDisk: true);
        }
    }

    /// <summary>Reads a part or merged file: its rows and its metadata. Throws <see cref="InvalidInputException"/> naming the
    /// file when it is not a complete Parquet file of these columns.</summary>
    public static (List<InfluenceScore> Rows, IReadOnlyDictionary<string, string> Metadata) Read(string path)
    {
        return ReadAsync().GetAwaiter().GetResult();

        async Task<(List<InfluenceScore>, IReadOnlyDictionary<string, string>)> ReadAsync()
        {
            await using var reader = await Corpus.OpenParquet(path);
            var rows = new List<InfluenceScore>();
            try
            {
                for (int g = 0; g < reader.RowGroupCount; g++)
                {
                    using var rg = reader.OpenRowGroupReader(g);
                    int n = checked((int)rg.RowCount);
                    var ids = new string?[n];
                    var tokens = new int[n];
                    var lossRef = new double[n];
                    var lossMasked = new double[n];
                    await rg.ReadAsync(IdColumn, ids.AsMemory());
                    await rg.ReadAsync(TokensColumn, tokens.AsMemory());
                    await rg.ReadAsync(LossRefColumn, lossRef.AsMemory());
                    await rg.ReadAsync(LossMaskedColumn, lossMasked.AsMemory());
                    for (int i = 0; i < n; i++)
                    {
                        rows.Add(new InfluenceScore(ids[i]!, tokens[i], lossRef[i], lossMasked[i]));
                    }
                }
            }
            catch (Exception e) when (e is not HeadwiseException and not OperationCanceledException)
            {
                throw new InvalidInputException($"{path}: not an influence file (columns id, n_tokens, loss_ref, loss_masked, score: {e.Message})", e);
            }
            return (rows, new Dictionary<string, string>(reader.CustomMetadata));
        }
    }

    /// <summary>The run info of an existing complete part, or null when <paramref name="path"/> is absent or not a complete
    /// influence file (a part to compute again).</summary>
    public static InfluenceRunInfo? ReadInfoIfComplete(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            var (_, meta) = Read(path);
            return InfluenceRunInfo.FromMetadata(meta, path);
        }
        catch (InvalidInputException)
        {
            return null;
        }
    }

    /// <summary>
    /// Merges the parts in <paramref name="dir"/> into <c>influence.parquet</c>: every document exactly once, sorted by score
    /// (descending; ties by id), written atomically. Refused, naming them, when parts are missing, parts disagree on model, heads
    /// or corpus, or a document appears twice or the count differs from the corpus's. With <paramref name="top"/> (a share in
    /// (0, 1]) the top documents are also written, with their original text, as JSON lines to <c>influence-top.jsonl</c>.
    /// Returns the merged rows.
    /// </summary>
    public static List<InfluenceScore> Merge(string dir, double? top = null)
    {
        if (top is { } p && !(p > 0 && p <= 1))
        {
            throw new InvalidInputException($"the top share must be in (0, 1] (got {p})");
        }
        if (!Directory.Exists(dir))
        {
            throw new InvalidInputException($"{dir}: no such directory");
        }
        var parts = Directory.GetFiles(dir).Select(System.IO.Path.GetFileName).Select(n => PartPattern().Match(n!)).Where(m => m.Success).ToArray();
        if (parts.Length == 0)
        {
            throw new InvalidInputException($"{dir}: no parts (part-IIIII-of-NNNNN.parquet) to merge");
        }
        var counts = parts.Select(m => int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)).Distinct().Order().ToArray();
        if (counts.Length > 1)
        {
            throw new InvalidInputException($"{dir}: parts of different shard counts ({string.Join(", ", counts)}): one run's parts per directory");
        }
        int N = counts[0];
        var missing = Enumerable.Range(0, N).Select(i => PartName(i, N)).Where(n => !File.Exists(System.IO.Path.Combine(dir, n))).ToArray();
        if (missing.Length > 0)
        {
            throw new InvalidInputException($"{dir}: {missing.Length} of {N} parts missing: {string.Join(", ", missing.Take(20))}{(missing.Length > 20 ? ", …" : "")}");
        }
        var rows = new List<InfluenceScore>();
        InfluenceRunInfo? info = null;
        string first = PartName(0, N);
        for (int i = 0; i < N; i++)
        {
            string path = System.IO.Path.Combine(dir, PartName(i, N));
            var (partRows, meta) = Read(path);
            var partInfo = InfluenceRunInfo.FromMetadata(meta, path);
            info ??= partInfo;
            if (partInfo.Mismatch(info) is { } why)
            {
                throw new InvalidInputException($"{path}: computed with a different run than {first}: {why}");
            }
            rows.AddRange(partRows);
        }
        var duplicates = rows.GroupBy(r => r.Id, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).Take(10).ToArray();
        if (duplicates.Length > 0)
        {
            throw new InvalidInputException($"{dir}: documents in more than one part: {string.Join(", ", duplicates.Select(d => $"'{d}'"))}");
        }
        if (rows.Count != info!.CorpusDocuments)
        {
            throw new InvalidInputException($"{dir}: the parts hold {rows.Count} documents, the corpus {info.CorpusDocuments}");
        }
        rows.Sort((a, b) => b.Score != a.Score ? b.Score.CompareTo(a.Score) : string.CompareOrdinal(a.Id, b.Id));
        // the same bytes however many parts: the merged file records the run, not how it was split
        Write(System.IO.Path.Combine(dir, MergedName), rows, info.ToMetadata());
        if (top is { } share)
        {
            WriteTop(System.IO.Path.Combine(dir, TopName), rows, share, info);
        }
        return rows;
    }

    // readable text in the JSON lines (JSON's own escapes only: the file is data, never embedded in HTML)
    private static readonly JsonSerializerOptions TopJson = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    // the top share, in score order, with each document's text read again from the corpus
    private static void WriteTop(string path, List<InfluenceScore> rows, double share, InfluenceRunInfo info)
    {
        int count = Math.Max(1, (int)Math.Ceiling(share * rows.Count));
        var selected = rows.Take(count).ToArray();
        var wanted = selected.Select(r => r.Id).ToHashSet(StringComparer.Ordinal);
        var texts = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var doc in new Corpus(info.Corpus, info.TextField, info.IdField).ReadAll())
        {
            if (wanted.Contains(doc.Id))
            {
                texts[doc.Id] = doc.Text;
            }
        }
        string temp = TempPath(path);
        using (var writer = new StreamWriter(temp, append: false, new UTF8Encoding(false)))
        {
            foreach (var r in selected)
            {
                string text = texts.TryGetValue(r.Id, out var t) ? t
                    : throw new InvalidInputException($"{info.Corpus}: document '{r.Id}' is no longer in the corpus");
                writer.Write(JsonSerializer.Serialize(new Dictionary<string, object> { ["id"] = r.Id, ["score"] = r.Score, ["text"] = text }, TopJson));
                writer.Write('\n');
            }
        }
        File.Move(temp, path, overwrite: true);
    }
}
