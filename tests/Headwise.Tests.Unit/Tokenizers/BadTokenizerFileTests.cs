using Headwise.Tokenizers;

namespace Headwise.Tests.Unit.Tokenizers;

public sealed class BadTokenizerFileTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = TokenizerTestFiles.NewTempDir("bad");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private ModelFormatException AssertFails(Func<TextTokenizer> load, string mustMention)
    {
        var e = Assert.Throws<ModelFormatException>(load);
        output.WriteLine(e.Message);
        Assert.Contains(mustMention, e.Message);
        return e;
    }

    [Fact]
    public void Missing_file_or_empty_directory()
    {
        string missing = Path.Combine(_dir, "nope", "tokenizer.json");
        AssertFails(() => TokenizerLoader.Load(missing), missing);
        AssertFails(() => TokenizerLoader.Load(_dir), "tokenizer.json");
        AssertFails(() => TokenizerLoader.LoadLlama2c(Path.Combine(_dir, "tok.bin"), 512), "tok.bin");
    }

    [Fact]
    public void Truncated_llama2c_tokenizer()
    {
        string tok512 = TokenizerTestFiles.RequireTok512();
        byte[] data = File.ReadAllBytes(tok512);
        foreach (int keep in new[] { 2, 6, 3000, data.Length - 1 })
        {
            string path = Path.Combine(_dir, $"tok512-cut{keep}.bin");
            File.WriteAllBytes(path, data[..keep]);
            var e = AssertFails(() => TokenizerLoader.LoadLlama2c(path, 512), path);
            Assert.Contains("truncated", e.Message);
            AssertFails(() => TokenizerLoader.Load(path), path);
        }

        // Asking for more tokens than the file holds is also caught, and fewer leaves trailing bytes.
        AssertFails(() => TokenizerLoader.LoadLlama2c(tok512, 513), tok512);
        AssertFails(() => TokenizerLoader.LoadLlama2c(tok512, 511), "trailing");
    }

    [Fact]
    public void Invalid_json()
    {
        string path = TokenizerTestFiles.Write(_dir, "tokenizer.json", "{ \"model\": { \"type\": \"BPE\", ");
        var e = AssertFails(() => TokenizerLoader.Load(path), path);
        Assert.Contains("JSON", e.Message);
        string noModel = TokenizerTestFiles.Write(_dir, "nomodel.json", "[1, 2, 3]");
        AssertFails(() => TokenizerLoader.Load(noModel), "model");
    }

    [Theory]
    [InlineData("Unigram", "\"vocab\": [[\"<unk>\", 0.0]]")]
    [InlineData("WordPiece", "\"vocab\": {\"[UNK]\": 0}, \"unk_token\": \"[UNK]\"")]
    [InlineData("WordLevel", "\"vocab\": {\"a\": 0}")]
    public void Unsupported_model_type(string type, string rest)
    {
        string path = TokenizerTestFiles.Write(_dir, $"{type}.json", "{\"model\": {\"type\": \"" + type + "\", " + rest + "}}");
        var e = AssertFails(() => TokenizerLoader.Load(path), path);
        Assert.Contains(type, e.Message);
    }

    [Fact]
    public void Merge_with_unknown_token_and_unknown_extension()
    {
        string path = TokenizerTestFiles.Write(_dir, "tokenizer.json", """{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}""");
        var e = AssertFails(() => TokenizerLoader.Load(path), path);
        Assert.Contains("\"ab\"", e.Message);
        string txt = TokenizerTestFiles.Write(_dir, "tokenizer.txt", "hello");
        AssertFails(() => TokenizerLoader.Load(txt), ".txt");
        string model = TokenizerTestFiles.Write(_dir, "tokenizer.model", "this is not a protobuf");
        AssertFails(() => TokenizerLoader.Load(model), model);
    }
}
