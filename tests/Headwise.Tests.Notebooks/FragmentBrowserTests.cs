using Headwise.Analysis;
using Headwise.Interactive;
using Microsoft.Playwright;

namespace Headwise.Tests.Notebooks;

/// <summary>
/// A notebook output in a real browser (Debian's Chromium through Playwright, as the report's test): the pattern fragment
/// draws its heatmap and its token view, hovering a token colours the others by the cached weights, nothing is requested
/// from the network and the script raises no error.
/// </summary>
public sealed class FragmentBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task PatternFragmentWorksInChromium()
    {
        Assert.SkipUnless(File.Exists(Chromium), $"{Chromium} is absent (install it with: apt-get install -y chromium)");
        var (m, ids, labels, cache) = FormatterTests.Demo();
        using var _ = m;
        var set = cache.Patterns([new HeadId(1, 2), new HeadId(2, 0)], tokens: labels);
        string file = Path.Combine(AppContext.BaseDirectory, "fragment.html");
        File.WriteAllText(file, "<!doctype html><html><head><meta charset=\"utf-8\"></head><body>" + HeadwiseHtml.PatternSet(set) + "</body></html>");

        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        var page = await browser.NewPageAsync();
        var errors = new List<string>();
        var requests = new List<string>();
        page.PageError += (_, e) => errors.Add(e);
        page.Request += (_, r) => requests.Add(r.Url);
        await page.RouteAsync("**/*", r => r.Request.Url.StartsWith("file:", StringComparison.Ordinal) ? r.ContinueAsync() : r.AbortAsync());
        await page.GotoAsync(new Uri(file).AbsoluteUri);

        int T = ids.Length;
        Assert.Equal(2 * T * T, await page.Locator("svg.hw-pattern rect").CountAsync());
        Assert.Equal(["1.2", "2.0"], await page.Locator(".hw-tv-row").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.head)"));
        int q = T - 1, k = 1;
        await page.Locator(".hw-tv-row[data-head='2.0'] .hw-tv-tok").Nth(q).HoverAsync();
        foreach (var (head, name) in new[] { (set.Heads[0], "1.2"), (set.Heads[1], "2.0") })
        {
            string title = await page.Locator($".hw-tv-row[data-head='{name}'] .hw-tv-tok").Nth(k).GetAttributeAsync("title") ?? "";
            Assert.StartsWith($"{q} → {k}: ", title, StringComparison.Ordinal);
            Assert.Equal(head[q, k], double.Parse(title[$"{q} → {k}: ".Length..], System.Globalization.CultureInfo.InvariantCulture), 0.00005 + 1e-7);
        }
        Assert.Empty(errors);
        Assert.All(requests, u => Assert.StartsWith("file:", u, StringComparison.Ordinal));
    }
}
