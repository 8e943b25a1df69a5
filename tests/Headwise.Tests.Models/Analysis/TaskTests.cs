using Headwise.Analysis.Tasks;
using Headwise.Loading;

namespace Headwise.Tests.Models.Analysis;

public class TaskTests
{
    [Fact]
    public void PromptsAreDeterministicForASeed()
    {
        foreach (var name in TaskLibrary.Names)
        {
            var a = TaskLibrary.Create(name, 6, seed: 3);
            var b = TaskLibrary.Create(name, 6, seed: 3);
            var c = TaskLibrary.Create(name, 6, seed: 4);
            Assert.Equal(a.Prompts.Select(p => p.Clean + "|" + p.Corrupted), b.Prompts.Select(p => p.Clean + "|" + p.Corrupted));
            Assert.NotEqual(a.Prompts.Select(p => p.Clean), c.Prompts.Select(p => p.Clean));
            Assert.Equal(6, a.Prompts.Count);
        }
        var ioi = TaskLibrary.Create("ioi", 1, 0).Prompts[0];
        Assert.EndsWith(" to", ioi.Clean);
        Assert.Contains(ioi.Answers[0].Trim(), ioi.Clean);
        var gt = TaskLibrary.Create("greater-than", 1, 0).Prompts[0];
        Assert.Equal(100, gt.Answers.Length + gt.Wrong.Length);
    }

    [Fact]
    public void AnswersAreSingleTokensOrReported()
    {
        string dir = TestPaths.RequireStories260K();
        using var m = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var tok = m.RequireTokenizer();
        foreach (var name in TaskLibrary.Names)
        {
            var task = TaskLibrary.Create(name, 4, 1);
            var t = TaskLibrary.Tokenize(task, tok);
            bool multi = false;
            for (int i = 0; i < task.Prompts.Count; i++)
            {
                var promptIds = tok.Encode(task.Prompts[i].Clean);
                // the prompt's own ids, plus any leading tokens every answer shares (moved into the prompt, and noted)
                Assert.Equal(promptIds, t.Prompts[i].Clean[..promptIds.Length]);
                int shared = t.Prompts[i].Clean.Length - promptIds.Length;
                Assert.Equal(shared > 0, t.Notes.Any(n => n.Contains("appended to the prompt") && n.Contains(task.Prompts[i].Clean)));
                foreach (var (text, id) in task.Prompts[i].Answers.Concat(task.Prompts[i].Wrong).Zip(t.Prompts[i].AnswerIds.Concat(t.Prompts[i].WrongIds)))
                {
                    var full = tok.Encode(task.Prompts[i].Clean + text);
                    Assert.Equal(full[..t.Prompts[i].Clean.Length], t.Prompts[i].Clean); // the shared tokens really begin every answer
                    var after = full[t.Prompts[i].Clean.Length..];
                    Assert.Equal(after[0], id);       // the first token after the (extended) prompt
                    multi |= after.Length > 1;
                }
                if (shared > 0)
                {
                    Assert.NotEqual(t.Prompts[i].AnswerIds[0], t.Prompts[i].WrongIds[0]);
                }
                if (t.Prompts[i].Corrupted is { } x)
                {
                    Assert.Equal(t.Prompts[i].Clean.Length, x.Length);
                }
            }
            Assert.Equal(multi, t.Notes.Any(n => n.Contains("several tokens")));
        }
    }

    [Fact]
    public void WithATokenizerSwappedNamesAndCapitalsKeepTheCleanLength()
    {
        string dir = TestPaths.RequireStories260K();
        using var m = ModelLoader.Load(Path.Combine(dir, "stories260K.bin"), Path.Combine(dir, "tok512.bin"));
        var tok = m.RequireTokenizer();
        foreach (var name in new[] { "ioi", "factual" })
        {
            // stories260K's 512 pieces split names unevenly: without the tokenizer some corrupted prompts are dropped
            var plain = TaskLibrary.Tokenize(TaskLibrary.Create(name, 16, 0), tok);
            var matched = TaskLibrary.Tokenize(TaskLibrary.Create(name, 16, 0, tok), tok);
            Assert.Contains(plain.Prompts, p => p.Corrupted is null);
            Assert.All(matched.Prompts, p => Assert.Equal(p.Clean.Length, p.Corrupted!.Length));
        }
        // and without a tokenizer the same seed still gives the same prompts
        Assert.Equal(TaskLibrary.Create("ioi", 16, 3).Prompts.Select(p => p.Clean), TaskLibrary.Create("ioi", 16, 3, null).Prompts.Select(p => p.Clean));
    }
}
