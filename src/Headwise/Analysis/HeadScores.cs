namespace Headwise.Analysis;

/// <summary>
/// One number per head: <c>Values[layer][head]</c>. What every detector and importance measure returns, and what the report
/// colours its layer × head grid by. <see cref="Definition"/> says in one sentence how the number is computed.
/// </summary>
public sealed record HeadScores(string Name, string Definition, float[][] Values)
{
    public int Layers => Values.Length;
    public int Heads => Values.Length == 0 ? 0 : Values[0].Length;

    public float this[HeadId h] => Values[h.Layer][h.Head];

    /// <summary>Set when the numbers must not be read as their usual scale (e.g. patching on a clean–corrupted gap too small
    /// to normalize by): the report and the CLI show it beside the scores.</summary>
    public string? Warning { get; init; }

    public static HeadScores Create(string name, string definition, int layers, int heads, Func<int, int, float> value)
    {
        var v = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            v[l] = new float[heads];
            for (int h = 0; h < heads; h++)
            {
                v[l][h] = value(l, h);
            }
        }
        return new HeadScores(name, definition, v);
    }

    /// <summary>The heads ordered by score, highest first (ties by layer, then head).</summary>
    public IReadOnlyList<(HeadId Head, float Score)> Ranked(bool descending = true)
    {
        var all = new List<(HeadId, float)>();
        for (int l = 0; l < Layers; l++)
        {
            for (int h = 0; h < Heads; h++)
            {
                all.Add((new HeadId(l, h), Values[l][h]));
            }
        }
        return descending
            ? all.OrderByDescending(x => x.Item2).ThenBy(x => x.Item1).ToList()
            : all.OrderBy(x => x.Item2).ThenBy(x => x.Item1).ToList();
    }

    public IReadOnlyList<(HeadId Head, float Score)> Top(int k) => Ranked().Take(k).ToList();
}

/// <summary>Every head's attention pattern on one prompt, with the tokens as labels.</summary>
/// <param name="Tokens">Display text of each position (length T).</param>
/// <param name="Patterns">Patterns[layer][head] is a T × T row-major matrix: row q is where query q attends.</param>
public sealed record AttentionPatterns(int[] TokenIds, string[] Tokens, float[][][] Patterns)
{
    public int Layers => Patterns.Length;
    public int Heads => Patterns.Length == 0 ? 0 : Patterns[0].Length;
    public int Length => Tokens.Length;

    public float At(HeadId head, int query, int key) => Patterns[head.Layer][head.Head][query * Length + key];
}

/// <summary>Progress of a long analysis: <c>Done</c> of <c>Total</c> units (forwards, heads, prompts).</summary>
public readonly record struct AnalysisProgress(string Stage, int Done, int Total);
