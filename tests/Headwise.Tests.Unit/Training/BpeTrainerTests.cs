using Headwise.Tokenizers;
using Headwise.Training;

namespace Headwise.Tests.Unit.Training;

public sealed class BpeTrainerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("headwise-bpe-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void LearnsTheMostFrequentPairsInOrder()
    {
        // Pieces: "ab", " ab", " ab", " cd". Pair counts: (a,b) 3, (Ġ,a) 2, (Ġ,c) 1, (c,d) 1.
        // First merge a+b; then (Ġ,ab) occurs twice; every other pair once, so training stops.
        var v = BpeTrainer.Train("ab ab ab cd", 300);
        Assert.Equal([("a", "b"), ("Ġ", "ab")], v.Merges);
        Assert.Equal(258, v.Tokens.Count);
        Assert.Equal("Ġab", v.Tokens[257]);
    }

    [Fact]
    public void TiesGoToTheOrdinallySmallestPair()
    {
        // (x,y), (p,q) and (Ġ,p) all occur twice; ordinally p < x < Ġ (U+0120), so p+q first.
        var v = BpeTrainer.Train("xy pq xy pq", 258);
        Assert.Equal(("p", "q"), v.Merges[0]);
    }

    [Fact]
    public void WrittenTokenizerJsonLoadsAndRoundTrips()
    {
        string text = string.Concat(Enumerable.Repeat("The Congress of the United States shall assemble. Fellow-citizens: 1790, état — naïve!\n", 20));
        var v = BpeTrainer.Train(text, 320);
        Assert.Equal(v.Merges, BpeTrainer.Train(text, 320).Merges);   // deterministic
        string path = Path.Combine(_dir, "tokenizer.json");
        v.WriteTokenizerJson(path);
        var tok = TokenizerLoader.Load(path);
        Assert.Equal(v.Tokens.Count + 1, tok.VocabSize);
        foreach (string s in new[] { text, "The United States", "unseen wörds ☃ and\ttabs  ", "Congress, 1790" })
        {
            var ids = tok.Encode(s, addSpecial: false);
            Assert.Equal(s, tok.Decode(ids));
        }

        // Merges actually apply: a frequent word is one token, and encoding is shorter than the bytes.
        Assert.Single(tok.Encode(" Congress", addSpecial: false));
        Assert.True(tok.Encode(text, addSpecial: false).Length < text.Length / 3);
        Assert.Equal([v.Tokens.Count], tok.Encode("<|endoftext|>", addSpecial: false));
    }

    [Fact]
    public void RejectsVocabularyBelowTheByteAlphabet() =>
        Assert.Throws<InvalidInputException>(() => BpeTrainer.Train("abc", 100));
}
