using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>--prepack on the model-loading commands, info's packed bytes, and bench's prepack and ONNX Runtime sections.</summary>
public sealed class PrepackOnnxCliTests
{
    [Fact]
    public void InfoReportsThePackedBytesAndPrepackOffPacksNothing()
    {
        var on = CliRunner.Run("info", "--model", CliRunner.DemoModel, "--prepack", "on", "--json");
        Assert.True(on.ExitCode == 0, on.Stderr);
        using var onDoc = JsonDocument.Parse(on.Stdout);
        Assert.True(onDoc.RootElement.GetProperty("prepack").GetBoolean());
        long packed = onDoc.RootElement.GetProperty("weights_packed_bytes").GetInt64();
        long weights = onDoc.RootElement.GetProperty("weights_mapped_bytes").GetInt64() + onDoc.RootElement.GetProperty("weights_converted_bytes").GetInt64();
        // every linear weight and the unembedding, never more than the weights plus panel padding
        Assert.True(packed > 0 && packed <= weights + (1 << 20), $"packed {packed} bytes of {weights}");

        var off = CliRunner.Run("info", "--model", CliRunner.DemoModel, "--prepack", "off", "--json");
        Assert.True(off.ExitCode == 0, off.Stderr);
        using var offDoc = JsonDocument.Parse(off.Stdout);
        Assert.False(offDoc.RootElement.GetProperty("prepack").GetBoolean());
        Assert.Equal(0, offDoc.RootElement.GetProperty("weights_packed_bytes").GetInt64());
    }

    [Fact]
    public void ABadPrepackValueExits2NamingTheOption()
    {
        var r = CliRunner.Run("eval", "--model", CliRunner.DemoModel, "--text", "The cat", "--prepack", "sometimes");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--prepack expects auto, on or off, got 'sometimes'", r.Stderr);
    }

    [Fact]
    public void BenchOnnxChecksTheNllAndReportsRatiosPerTokenAndThreadCount()
    {
        var r = CliRunner.Run("bench", "--quick", "--skip-load", "--onnx", "--threads", "2", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var onnx = doc.RootElement.GetProperty("onnx");
        Assert.True(onnx.GetProperty("max_nll_diff").GetDouble() <= 1e-5);
        var runs = onnx.GetProperty("runs").EnumerateArray().ToList();
        Assert.Equal([(32, 1), (64, 1), (32, 2), (64, 2)], runs.Select(x => (x.GetProperty("tokens").GetInt32(), x.GetProperty("threads").GetInt32())));
        foreach (var x in runs)
        {
            double ours = x.GetProperty("headwise_tokens_per_s").GetDouble(), ort = x.GetProperty("ort_tokens_per_s").GetDouble();
            Assert.Equal(ours / ort, x.GetProperty("ratio").GetDouble(), 1e-6 * ours / ort);
        }
        var prepack = doc.RootElement.GetProperty("prepack");
        Assert.True(prepack.GetProperty("packed_bytes").GetInt64() > 0);
        Assert.Equal(prepack.GetProperty("unpacked_s").GetDouble() / prepack.GetProperty("packed_s").GetDouble(), prepack.GetProperty("speedup").GetDouble(), 1e-9);
    }
}
