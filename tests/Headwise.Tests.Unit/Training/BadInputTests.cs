using Headwise.Training;

namespace Headwise.Tests.Unit.Training;

// One clear exception per kind of bad input, naming the thing; a failed resume leaves the checkpoint untouched.
public sealed class TrainingBadInputTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hw-bad-" + Guid.NewGuid().ToString("N"));
    private readonly int[] _data = TrainerTests.Stream(1500, 16);

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, true);
    }

    private string Checkpoint()
    {
        var opts = new TrainerOptions { Steps = 4, BatchSize = 2, StopAfterStep = 2 };
        new Trainer(new TrainableTransformer(TrainerTests.Tiny(), seed: 1), opts, _data, _dir).Train();
        return Path.Combine(_dir, "checkpoint");
    }

    private static Dictionary<string, byte[]> Snapshot(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    [Fact]
    public void CorruptStateIsRejectedAndLeftAsItWas()
    {
        string cp = Checkpoint();
        string state = Path.Combine(cp, TrainingCheckpoint.StateFile);
        var bytes = File.ReadAllBytes(state);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(state, bytes);
        var before = Snapshot(cp);
        var e = Assert.Throws<ModelFormatException>(() => Trainer.Resume(_dir, _data, _dir).Train());
        Assert.Contains(TrainingCheckpoint.StateFile, e.Message);
        Assert.Contains("checksum", e.Message);
        var after = Snapshot(cp);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, content) in before) Assert.Equal(content, after[name]);
    }

    [Fact]
    public void TruncatedStateIsRejected()
    {
        string cp = Checkpoint();
        string state = Path.Combine(cp, TrainingCheckpoint.StateFile);
        File.WriteAllBytes(state, File.ReadAllBytes(state)[..20]);
        var e = Assert.Throws<ModelFormatException>(() => Trainer.Resume(cp, _data));
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void StateOfAnotherModelIsRejected()
    {
        string cp = Checkpoint();
        string json = Path.Combine(cp, TrainingCheckpoint.ModelConfigFile);
        File.WriteAllText(json, File.ReadAllText(json).Replace("\"d_mlp\": 32", "\"d_mlp\": 48"));
        var e = Assert.Throws<ModelFormatException>(() => Trainer.Resume(cp, _data));
        Assert.Contains("parameters", e.Message);
        Assert.Contains(TrainingCheckpoint.ModelConfigFile, e.Message);
    }

    [Fact]
    public void MissingCheckpointFilesAreNamed()
    {
        Directory.CreateDirectory(_dir);
        var e = Assert.Throws<ModelFormatException>(() => Trainer.Resume(_dir, _data));
        Assert.Contains(TrainingCheckpoint.ModelConfigFile, e.Message);
        Assert.Throws<InvalidInputException>(() => Trainer.Resume(Path.Combine(_dir, "nope"), _data));
    }

    [Fact]
    public void ResumeOnOtherDataIsRejected()
    {
        string cp = Checkpoint();
        var e = Assert.Throws<InvalidInputException>(() => Trainer.Resume(cp, TrainerTests.Stream(1500, 16, seed: 2)));
        Assert.Contains("data differs", e.Message);
    }

    [Fact]
    public void DataTooShortForOneBatch()
    {
        var model = new TrainableTransformer(TrainerTests.Tiny());
        var e = Assert.Throws<InvalidInputException>(() => new Trainer(model, new TrainerOptions { Steps = 1 }, [1, 2, 3, 4, 5]));
        Assert.Contains("too short", e.Message);
        Assert.Contains("sequence length 8", e.Message);
        Assert.False(Directory.Exists(_dir));
    }

    [Fact]
    public void TokensOutsideTheVocabulary()
    {
        var model = new TrainableTransformer(TrainerTests.Tiny());
        var e = Assert.Throws<InvalidInputException>(() => new Trainer(model, new TrainerOptions(), Enumerable.Repeat(16, 100).ToArray()));
        Assert.Contains("vocabulary", e.Message);
    }

    [Theory]
    [InlineData(30, 4, 0, "do not divide d_model")]
    [InlineData(32, 4, 3, "multiple of key/value heads")]
    [InlineData(32, 0, 0, "heads must be positive")]
    public void ImpossibleConfigurations(int dModel, int heads, int kvHeads, string message)
    {
        var c = TrainerTests.Tiny() with { DModel = dModel, NHeads = heads, NKvHeads = kvHeads };
        var e = Assert.Throws<InvalidInputException>(() => new TrainableTransformer(c));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void OneHotEmbeddingsNeedDModelEqualToVocab()
    {
        var c = TrainerTests.Tiny() with { OneHotEmbeddings = true, DModel = 12, NHeads = 3 };
        var e = Assert.Throws<InvalidInputException>(() => new TrainableTransformer(c));
        Assert.Contains("one-hot embeddings need d_model = vocab size", e.Message);
    }

    [Fact]
    public void ImpossibleOptions()
    {
        var model = new TrainableTransformer(TrainerTests.Tiny());
        var e = Assert.Throws<InvalidInputException>(() => new Trainer(model, new TrainerOptions { SeqLen = 64 }, _data));
        Assert.Contains("exceeds", e.Message);
        Assert.Throws<InvalidInputException>(() => new Trainer(model, new TrainerOptions { WarmupSteps = 5000 }, _data));
    }
}
