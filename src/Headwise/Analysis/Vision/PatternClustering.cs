namespace Headwise.Analysis.Vision;

/// <summary>The heads of a ViT grouped by their average attention profile (<see cref="PatternClustering.Run"/>).</summary>
/// <param name="Radius">Offsets run over −Radius..Radius in both directions (Radius = the larger grid side − 1).</param>
/// <param name="Heads">Every head, layer-major; <paramref name="Profiles"/>[i] is head i's profile and
/// <paramref name="Cluster"/>[i] its cluster (0..K−1, numbered in order of their first head).</param>
/// <param name="Prototypes">Each cluster's prototype: the mean profile of its heads.</param>
public sealed record PatternClusters(int Radius, HeadId[] Heads, float[][] Profiles, int[] Cluster, float[][] Prototypes)
{
    public int K => Prototypes.Length;

    /// <summary>Side of the offset square, 2·Radius + 1.</summary>
    public int Side => 2 * Radius + 1;

    /// <summary>Profile index of the attention on the CLS.</summary>
    public const int ClsIndex = 0;

    /// <summary>Profile index of the key at (dy, dx) patches from the query (dy down, dx right).</summary>
    public int Index(int dy, int dx) => 1 + (dy + Radius) * Side + (dx + Radius);

    /// <summary>The heads of cluster <paramref name="c"/>.</summary>
    public HeadId[] Members(int c) => [.. Heads.Where((_, i) => Cluster[i] == c)];
}

/// <summary>
/// Pattern clustering [How Does Attention Work in Vision Transformers? A Visual Analytics Attempt]: each head's attention
/// as a function of the relative patch offset, averaged over patch queries and images, clustered by k-means.
/// <para>Profile: entry CLS = the patch queries' mean attention on the CLS; entry (dy, dx) = their mean attention on the key
/// dy rows down and dx columns right (0 where that key is off the grid), so a profile sums to 1. K-means: Euclidean
/// distance, k-means++ seeding from a <see cref="Random"/> with the given seed, Lloyd's iterations until no head moves
/// (at most 100); ties go to the lower cluster; clusters left empty (more clusters than distinct profiles) are dropped.</para>
/// </summary>
public static class PatternClustering
{
    private const int MaxIterations = 100;

    /// <summary>Profiles from <paramref name="images"/> (each from <see cref="Patterns.PatternAnalysis.RunImage"/> on a
    /// rows × columns grid), clustered into at most <paramref name="k"/> groups.</summary>
    public static PatternClusters Run(IReadOnlyList<AttentionPatterns> images, int rows, int columns, int k, int seed = 0)
    {
        if (images.Count == 0)
        {
            throw new InvalidInputException("pattern clustering needs at least one image's patterns");
        }
        var profiles = new HeadProfiles(images[0].Layers, images[0].Heads, rows, columns);
        foreach (var p in images)
        {
            profiles.Add(p);
        }
        return Cluster(profiles, k, seed);
    }

    /// <summary>The accumulated <paramref name="profiles"/> clustered into at most <paramref name="k"/> groups.</summary>
    public static PatternClusters Cluster(HeadProfiles profiles, int k, int seed = 0)
    {
        var mean = profiles.Mean();
        if (k < 1 || k > mean.Length)
        {
            throw new InvalidInputException($"clusters: k = {k}; give 1 to {mean.Length} (the number of heads)");
        }
        var (cluster, prototypes) = KMeans(mean, k, seed);
        var heads = Enumerable.Range(0, mean.Length).Select(i => new HeadId(i / profiles.Heads, i % profiles.Heads)).ToArray();
        return new PatternClusters(profiles.Radius, heads, mean, cluster, prototypes);
    }

    // k-means with k-means++ seeding; returns each point's cluster and the non-empty clusters' centroids, renumbered in
    // order of their first point
    private static (int[] Cluster, float[][] Centroids) KMeans(float[][] points, int k, int seed)
    {
        int n = points.Length, d = points[0].Length;
        var rng = new Random(seed);
        var centroids = new List<double[]> { ToDouble(points[rng.Next(n)]) };
        var nearest = new double[n];
        while (centroids.Count < k)
        {
            double total = 0;
            for (int i = 0; i < n; i++)
            {
                nearest[i] = centroids.Min(c => Distance2(points[i], c));
                total += nearest[i];
            }
            if (total == 0)
            {
                break; // every point sits on a centroid: fewer distinct profiles than k
            }
            double pick = rng.NextDouble() * total;
            int chosen = 0;
            while (chosen < n - 1 && (pick -= nearest[chosen]) >= 0)
            {
                chosen++;
            }
            // skip points already at zero distance (pick can land on one only through rounding)
            while (nearest[chosen] == 0)
            {
                chosen = (chosen + 1) % n;
            }
            centroids.Add(ToDouble(points[chosen]));
        }
        var cluster = new int[n];
        Array.Fill(cluster, -1);
        for (int iteration = 0; iteration < MaxIterations; iteration++)
        {
            bool moved = false;
            for (int i = 0; i < n; i++)
            {
                int best = 0;
                for (int c = 1; c < centroids.Count; c++)
                {
                    best = Distance2(points[i], centroids[c]) < Distance2(points[i], centroids[best]) ? c : best;
                }
                moved |= cluster[i] != best;
                cluster[i] = best;
            }
            if (!moved)
            {
                break;
            }
            for (int c = 0; c < centroids.Count; c++)
            {
                var members = Enumerable.Range(0, n).Where(i => cluster[i] == c).ToArray();
                if (members.Length > 0)
                {
                    centroids[c] = Mean(points, members, d);
                }
            }
        }
        // renumber the non-empty clusters in order of their first point; prototypes = the members' mean profile
        var order = cluster.Distinct().ToArray();
        var renumbered = cluster.Select(c => Array.IndexOf(order, c)).ToArray();
        var prototypes = order.Select(c => Mean(points, [.. Enumerable.Range(0, n).Where(i => cluster[i] == c)], d).Select(x => (float)x).ToArray()).ToArray();
        return (renumbered, prototypes);
    }

    private static double[] Mean(float[][] points, int[] members, int d)
    {
        var mean = new double[d];
        foreach (int i in members)
        {
            for (int j = 0; j < d; j++)
            {
                mean[j] += points[i][j] / (double)members.Length;
            }
        }
        return mean;
    }

    private static double[] ToDouble(float[] x) => [.. x.Select(v => (double)v)];

    private static double Distance2(float[] x, double[] c)
    {
        double s = 0;
        for (int j = 0; j < x.Length; j++)
        {
            double e = x[j] - c[j];
            s += e * e;
        }
        return s;
    }
}

/// <summary>Every head's attention profile over relative patch offsets (<see cref="PatternClustering"/>), summed image by
/// image so that a directory of any size streams through.</summary>
public sealed class HeadProfiles(int layers, int heads, int rows, int columns)
{
    private readonly double[,] _sums = new double[layers * heads, 1 + Square(Math.Max(rows, columns) * 2 - 1)];
    private int _queries;

    public int Layers => layers;
    public int Heads => heads;
    public int Radius => Math.Max(rows, columns) - 1;

    /// <summary>Adds one image's patterns (position 0 the CLS, 1 + r·columns + c the patch in row r, column c).</summary>
    public void Add(AttentionPatterns p)
    {
        int T = 1 + rows * columns, R = Radius, side = 2 * R + 1;
        if (p.Length != T || p.Layers != layers || p.Heads != heads)
        {
            throw new InvalidInputException($"patterns over {p.Length} positions, {p.Layers}×{p.Heads} heads: expected a CLS and a {rows}×{columns} grid, {layers}×{heads} heads");
        }
        for (int l = 0; l < layers; l++)
        {
            for (int h = 0; h < heads; h++)
            {
                var a = p.Patterns[l][h]; // (T, T), query rows
                int head = l * heads + h;
                for (int q = 1; q < T; q++)
                {
                    int qr = (q - 1) / columns, qc = (q - 1) % columns;
                    _sums[head, PatternClusters.ClsIndex] += a[q * T];
                    for (int key = 1; key < T; key++)
                    {
                        int dy = (key - 1) / columns - qr, dx = (key - 1) % columns - qc;
                        _sums[head, 1 + (dy + R) * side + (dx + R)] += a[q * T + key];
                    }
                }
            }
        }
        _queries += T - 1;
    }

    /// <summary>The profiles so far, layer-major: the mean over every patch query added.</summary>
    public float[][] Mean()
    {
        if (_queries == 0)
        {
            throw new InvalidInputException("pattern clustering needs at least one image's patterns");
        }
        var mean = new float[_sums.GetLength(0)][];
        for (int i = 0; i < mean.Length; i++)
        {
            mean[i] = new float[_sums.GetLength(1)];
            for (int j = 0; j < mean[i].Length; j++)
            {
                mean[i][j] = (float)(_sums[i, j] / _queries);
            }
        }
        return mean;
    }

    private static int Square(int x) => x * x;
}
