using System.IO.Compression;
using Headwise.Analysis;
using Headwise.Evaluation;
using Headwise.Influence;
using Headwise.Interventions;
using Parquet;
using Parquet.Schema;

namespace Headwise.Tests.Models.Influence;

/// <summary>AttentionInfluence on the bundled demo model: the batched scorer against eval's own sliding window (one document at
/// a time, with and without the ablate/zero recipe), retrieval heads, and the corpus reader's formats and refusals.</summary>
public sealed class InfluenceTests : IDisposable
{
    private static readonly string Demo = Path.Combine(TestPaths.RepoRoot, "models", "demo");
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-influence-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // documents of very different lengths: a few tokens, about a window, and several windows (the demo's context is 128)
    private static (string Id, string Text)[] Documents() =>
    [
        ("short", "The cat sat on the mat."),
        ("medium", string.Join(" ", Enumerable.Repeat("Once upon a time there was a little girl who lived in a village near the forest.", 4))),
        ("long", string.Join(" ", Enumerable.Range(0, 40).Select(i => $"Sentence {i} tells of the river and the old mill by the bridge."))),
        ("two", "Hi"),
        ("mid2", "It was a bright cold day in April, and the clocks were striking thirteen. Winston Smith slipped quickly through the doors."),
    ];

    [Fact]
    public void BatchedScoresEqualEvalOneDocumentAtATime()
    {
        using var loaded = ModelLoader.Load(Demo);
        var tok = loaded.RequireTokenizer();
        var docs = Documents().Select(d => (d.Id, tok.Encode(d.Text, addSpecial: true))).ToArray();
        Assert.True(docs.Max(d => d.Item2.Length) > 2 * loaded.Config.MaxPositions, "the long document spans several windows");
        HeadId[] heads = [new(1, 2), new(3, 0)];
        using var batched = new InfluenceScorer(loaded.Model, heads, batchTokens: 4096);
        using var alone = new InfluenceScorer(loaded.Model, heads, batchTokens: 1); // every window its own forward
        var a = batched.Score(docs);
        var b = alone.Score(docs);

        var recipe = new Recipe("zero", [new AblateHeads(heads, Mean: false)]);
        using var applied = RecipeApplication.Apply(recipe, loaded.Model);
        int window = loaded.Config.MaxPositions, stride = window / 2;
        for (int d = 0; d < docs.Length; d++)
        {
            var ids = docs[d].Item2;
            double lossRef = Perplexity.Evaluate(loaded.Model, ids, window, stride).MeanNll;
            double lossMasked = Perplexity.Evaluate(applied.Model, ids, window, stride, hooks: applied.CreateHooks()).MeanNll;
            Assert.Equal(docs[d].Id, a[d].Id);
            Assert.Equal(ids.Length, a[d].NTokens);
            // padding after a sequence leaves its logits unchanged; only the GEMM's row blocking may differ in the last bits
            Assert.Equal(lossRef, a[d].LossRef, 1e-5);
            Assert.Equal(lossMasked, a[d].LossMasked, 1e-5);
            Assert.Equal(lossRef, b[d].LossRef, 1e-5);
            Assert.Equal(lossMasked, b[d].LossMasked, 1e-5);
            Assert.Equal((lossMasked - lossRef) / lossRef, a[d].Score, 1e-4);
            Assert.NotEqual(a[d].LossRef, a[d].LossMasked);
        }
    }

    [Fact]
    public void ScorerRefusesADocumentOfOneToken()
    {
        using var loaded = ModelLoader.Load(Demo);
        using var scorer = new InfluenceScorer(loaded.Model, [new HeadId(0, 0)]);
        var e = Assert.Throws<InvalidInputException>(() => scorer.Score([("lonely", [5])]));
        Assert.Contains("'lonely'", e.Message);
        Assert.Throws<InvalidInputException>(() => new InfluenceScorer(loaded.Model, [new HeadId(9, 0)]));
    }

    [Fact]
    public void RetrievalHeadsAreRankedDeterministicallyAndTopKeepsAtLeastOne()
    {
        using var loaded = ModelLoader.Load(Demo);
        var ranked = RetrievalHeads.Rank(loaded.Model);
        Assert.Equal(loaded.Config.NLayers * loaded.Config.NHeads, ranked.Count);
        Assert.True(ranked.Zip(ranked.Skip(1)).All(p => p.First.Score >= p.Second.Score));
        Assert.All(ranked, r => Assert.InRange(r.Score, 0, 1));
        Assert.Equal(ranked.Select(r => r.Head), RetrievalHeads.Rank(loaded.Model).Select(r => r.Head));
        var top = RetrievalHeads.Top(loaded.Model); // 3% of 16 heads rounds to 0: at least one
        Assert.Equal([ranked[0]], top);
        Assert.Equal(8, RetrievalHeads.Top(loaded.Model, share: 0.5).Count);
    }

    [Fact]
    public void CorpusReadsJsonLinesGzipParquetAndDirectoriesInOrder()
    {
        string sub = Path.Combine(_dir, "corpus");
        Directory.CreateDirectory(sub);
        File.WriteAllText(Path.Combine(sub, "a.jsonl"), "{\"id\": \"a0\", \"text\": \"first\"}\n\n{\"id\": 7, \"text\": \"second\"}\n");
        using (var gz = new GZipStream(File.Create(Path.Combine(sub, "b.jsonl.gz")), CompressionLevel.Fastest))
        using (var w = new StreamWriter(gz))
        {
            w.Write("{\"id\": \"b0\", \"text\": \"third\"}\n");
        }
        WriteParquet(Path.Combine(sub, "c.parquet"), ["c0", "c1"], ["fourth", "fifth"]);
        File.WriteAllText(Path.Combine(sub, "notes.txt"), "not part of the corpus");
        var corpus = new Corpus(sub);
        Assert.Equal(["a0", "7", "b0", "c0", "c1"], corpus.ReadAll().Select(d => d.Id));
        Assert.Equal(["first", "second", "third", "fourth", "fifth"], corpus.ReadAll().Select(d => d.Text));
        Assert.Equal(["a0", "c0"], corpus.ReadShard(0, 3).Select(d => d.Id));
        Assert.Equal(["7", "c1"], corpus.ReadShard(1, 3).Select(d => d.Id));
        Assert.Equal(["b0"], corpus.ReadShard(2, 3).Select(d => d.Id));
        Assert.Equal(5, corpus.CountedDocuments);
        Assert.Throws<InvalidInputException>(() => corpus.ReadShard(3, 3));
    }

    [Fact]
    public void CorpusRefusesDuplicatesMissingTextAndEmptiness()
    {
        string dup = Path.Combine(_dir, "dup.jsonl");
        File.WriteAllText(dup, "{\"id\": \"x\", \"text\": \"a\"}\n{\"id\": \"y\", \"text\": \"b\"}\n{\"id\": \"x\", \"text\": \"c\"}\n");
        var e = Assert.Throws<InvalidInputException>(() => new Corpus(dup).ReadShard(1, 2));
        Assert.Contains("duplicate", e.Message);
        Assert.Contains("'x'", e.Message);

        string missing = Path.Combine(_dir, "missing.jsonl");
        File.WriteAllText(missing, "{\"id\": \"x\", \"text\": \"a\"}\n{\"id\": \"y\", \"body\": \"b\"}\n");
        e = Assert.Throws<InvalidInputException>(() => new Corpus(missing).ReadShard(0, 1));
        Assert.Contains("'y'", e.Message);
        Assert.Contains("\"text\"", e.Message);
        Assert.Contains("missing.jsonl:2", e.Message);

        string empty = Path.Combine(_dir, "empty.jsonl");
        File.WriteAllText(empty, "\n");
        e = Assert.Throws<InvalidInputException>(() => new Corpus(empty).ReadShard(0, 1));
        Assert.Contains("empty", e.Message);

        string parquet = Path.Combine(_dir, "p.parquet");
        WriteParquet(parquet, ["a", "a"], ["one", "two"]);
        Assert.Contains("'a'", Assert.Throws<InvalidInputException>(() => new Corpus(parquet).ReadShard(0, 1)).Message);
        Assert.Contains("\"body\"", Assert.Throws<InvalidInputException>(() => new Corpus(parquet, textField: "body").ReadShard(0, 1)).Message);
    }

    [Fact]
    public void PartsRoundTripWithMetadataAndNoTemporaryFile()
    {
        string path = Path.Combine(_dir, InfluenceParts.PartName(1, 2));
        InfluenceScore[] rows = [new("a", 10, 2.0, 2.5), new("b", 3, 1.0, 0.9)];
        InfluenceParts.Write(path, rows, new Dictionary<string, string> { ["headwise.heads"] = "1.2" });
        var (back, meta) = InfluenceParts.Read(path);
        Assert.Equal(rows, back);
        Assert.Equal("1.2", meta["headwise.heads"]);
        Assert.Equal(0.25, back[0].Score, 1e-12);
        Assert.Equal(["part-00001-of-00002.parquet"], Directory.GetFiles(_dir).Select(Path.GetFileName));
        Assert.Equal("part-00001-of-00002.parquet", InfluenceParts.PartName(1, 2));
    }

    private static void WriteParquet(string path, string[] ids, string[] texts)
    {
        var id = new DataField<string>("id");
        var text = new DataField<string>("text");
        Task.Run(async () =>
        {
            await using var stream = File.Create(path);
            await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(id, text), stream);
            using var group = writer.CreateRowGroup();
            await group.WriteAsync(id, ids);
            await group.WriteAsync(text, texts);
        }).GetAwaiter().GetResult();
    }
}
