using System.Diagnostics;
using System.Text.Json;
using Headwise.Reports;
using Microsoft.Playwright;

namespace Headwise.Tests.Acceptance.Report;

/// <summary>
/// The report in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser). Opens the page from
/// disk, counts the grid's cells, clicks a head, hovers a pattern cell, switches the score, checks that no request left
/// the file and that the script raised no error, and saves a screenshot under the test output folder.
/// </summary>
public sealed class ReportBrowserTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task ReportWorksInChromiumOffline()
    {
        Assert.SkipUnless(File.Exists(Chromium), $"{Chromium} is absent (install it with: apt-get install -y chromium)");
        var clock = Stopwatch.StartNew();
        string outDir = Path.Combine(AppContext.BaseDirectory, "report-browser");
        Directory.CreateDirectory(outDir);
        string html = Path.Combine(outDir, "report.html");
        string[] model = CliRunner.Stories260K is { } s
            ? ["--model", Path.Combine(s, "stories260K.bin"), "--tokenizer", Path.Combine(s, "tok512.bin")]
            : ["--model", CliRunner.Golden("llama_gqa")];
        var r = CliRunner.Run(["report", .. model, "--out", html, "--max-tokens", "24", "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(HtmlReport.ExtractDataJson(File.ReadAllText(html)));
        var data = doc.RootElement;
        int L = data.GetProperty("layers").GetInt32(), H = data.GetProperty("heads").GetInt32();
        var tokens = data.GetProperty("patterns").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToArray();
        int T = tokens.Length;

        output.WriteLine($"report written in {clock.Elapsed.TotalSeconds:F1} s");
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        output.WriteLine($"chromium started at {clock.Elapsed.TotalSeconds:F1} s");
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1200, Height = 900 } });
        var requests = new List<string>();
        var errors = new List<string>();
        page.Request += (_, req) => requests.Add(req.Url);
        page.PageError += (_, e) => errors.Add(e);
        page.Console += (_, m) =>
        {
            if (m.Type == "error")
            {
                errors.Add(m.Text);
            }
        };
        // any request that is not the file itself fails (and is recorded above)
        await page.RouteAsync("**/*", route => route.Request.Url.StartsWith("file:", StringComparison.Ordinal) ? route.ContinueAsync() : route.AbortAsync());

        await page.GotoAsync(new Uri(html).AbsoluteUri);
        output.WriteLine($"page loaded at {clock.Elapsed.TotalSeconds:F1} s");

        // the grid: one cell per head, one option per score
        var cells = page.Locator("#grid .cell");
        Assert.Equal(L * H, await cells.CountAsync());
        Assert.Equal(data.GetProperty("scores").GetArrayLength(), await page.Locator("#score-select option").CountAsync());
        // a cell shows its score to 2 significant digits
        double score = data.GetProperty("scores")[0].GetProperty("values")[1][2].GetDouble();
        double shown = double.Parse(await page.Locator("#grid .cell[data-layer='1'][data-head='2']").InnerTextAsync(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(score, shown, 0.051 * Math.Abs(score));

        // click head 1.2: its pattern, with a label per token on each axis
        await page.Locator("#grid .cell[data-layer='1'][data-head='2']").ClickAsync();
        Assert.Equal("Attention pattern of head 1.2", await page.Locator("#pattern-title").InnerTextAsync());
        Assert.Equal(T * (T + 1) / 2, await page.Locator("#pattern-svg rect.pcell").CountAsync());
        Assert.Equal(T, await page.Locator("#pattern-svg text.qlabel").CountAsync());
        Assert.Equal(T, await page.Locator("#pattern-svg text.klabel").CountAsync());
        string Short(string t) => t.Length > 12 ? t[..11] + "…" : t;
        Assert.Equal(Short(tokens[5]), await page.Locator("#pattern-svg text.qlabel").Nth(5).TextContentAsync());
        Assert.Contains("selected", await page.Locator("#grid .cell[data-layer='1'][data-head='2']").GetAttributeAsync("class") ?? "");

        // hover query 6, key 4: the tooltip names both tokens and the weight stored for head 1.2
        int q = Math.Min(6, T - 1), k = q - 2;
        await page.Locator($"#pattern-svg rect.pcell[data-q='{q}'][data-k='{k}']").HoverAsync();
        var tip = page.Locator("#tooltip");
        Assert.True(await tip.IsVisibleAsync());
        string tipText = await tip.InnerTextAsync();
        string weight = data.GetProperty("patterns").GetProperty("heads")[1 * H + 2][q][k].GetRawText();
        Assert.Contains($"query {q} {JsonSerializer.Serialize(tokens[q])}", tipText, StringComparison.Ordinal);
        Assert.Contains($"key   {k} {JsonSerializer.Serialize(tokens[k])}", tipText, StringComparison.Ordinal);
        Assert.Contains($"weight {weight}", tipText, StringComparison.Ordinal);
        Assert.Equal(1, await page.Locator("#pattern-svg text.qlabel.hot").CountAsync()); // the query's label lights up

        // the token view: one row for head 1.2, one span per token; hovering token q colours token k by weight(q → k)
        var tv = page.Locator("#tokenview");
        Assert.Equal(["1.2"], await tv.Locator(".hw-tv-row").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.head)"));
        Assert.Equal(T, await tv.Locator(".hw-tv-row[data-head='1.2'] .hw-tv-tok").CountAsync());
        var rowTokens = tv.Locator(".hw-tv-row[data-head='1.2'] .hw-tv-tok");
        await rowTokens.Nth(q).HoverAsync();
        // the browser writes an opaque colour as rgb(…), any other as rgba(r, g, b, alpha), the alpha kept in 8 bits and
        // written with as few decimals as read back the same: within 0.01 of the weight; the token's title holds it exactly
        const double alphaTolerance = 0.01;
        double Alpha(string css) => css.StartsWith("rgb(", StringComparison.Ordinal) ? 1
            : double.Parse(css.Split(',')[3].TrimEnd(')', ' '), System.Globalization.CultureInfo.InvariantCulture);
        double w12 = data.GetProperty("patterns").GetProperty("heads")[1 * H + 2][q][k].GetDouble();
        Assert.Equal(w12, Alpha(await rowTokens.Nth(k).EvaluateAsync<string>("e => e.style.background")), alphaTolerance);
        Assert.Equal($"{q} → {k}: {data.GetProperty("patterns").GetProperty("heads")[1 * H + 2][q][k].GetRawText()}", await rowTokens.Nth(k).GetAttributeAsync("title"));
        if (q + 1 < T)
        {
            Assert.Equal(0.0, Alpha(await rowTokens.Nth(q + 1).EvaluateAsync<string>("e => e.style.background")), alphaTolerance); // causal: no weight on later tokens
        }
        StringAssert(await tv.Locator(".hw-tv-status").InnerTextAsync(), $"token {q} {JsonSerializer.Serialize(tokens[q])} attends most to ");
        // "attended by": hovering token k colours each query q by weight(q → k)
        await tv.Locator("input[value='from']").CheckAsync();
        await rowTokens.Nth(k).HoverAsync();
        Assert.Equal(w12, Alpha(await rowTokens.Nth(q).EvaluateAsync<string>("e => e.style.background")), alphaTolerance);
        // shift-click head 0.1 in the grid: kept beside 1.2, the selection (and the pattern) unchanged
        await page.Locator("#grid .cell[data-layer='0'][data-head='1']").ClickAsync(new() { Modifiers = [KeyboardModifier.Shift] });
        Assert.Equal(["0.1", "1.2"], await tv.Locator(".hw-tv-row").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.head)"));
        Assert.Equal("Attention pattern of head 1.2", await page.Locator("#pattern-title").InnerTextAsync());
        await tv.Locator(".hw-tv-row[data-head='0.1'] .hw-tv-tok").Nth(q).HoverAsync();
        double w01 = data.GetProperty("patterns").GetProperty("heads")[0 * H + 1][q][k].GetDouble();
        Assert.Equal(w01, Alpha(await tv.Locator(".hw-tv-row[data-head='0.1'] .hw-tv-tok").Nth(k).EvaluateAsync<string>("e => e.style.background")), alphaTolerance);
        await page.Locator("#clear-pins").ClickAsync();
        Assert.Equal(1, await tv.Locator(".hw-tv-row").CountAsync());

        // switch the grid to induction; a top-heads link opens that head
        await page.Locator("#score-select").SelectOptionAsync(new SelectOptionValue { Label = "induction" });
        StringAssert(await page.Locator("#score-def").InnerTextAsync(), "induction:");
        var link = page.Locator("a.head-link").First;
        string linkHead = await link.InnerTextAsync();
        await link.ClickAsync();
        Assert.Equal($"Attention pattern of head {linkHead}", await page.Locator("#pattern-title").InnerTextAsync());

        // the tables sit under one heading per section, in the data's order, every table of the data drawn once
        var sectionNames = data.GetProperty("tables").EnumerateArray().Select(t => t.GetProperty("section").GetString()!).Distinct().ToArray();
        Assert.Equal(["Top heads", "Composition (circuits)", "Attention statistics", "Does attention explain the prediction?"], sectionNames);
        Assert.Equal(sectionNames, await page.Locator("section.table-section > h2").AllInnerTextsAsync());
        Assert.Equal(data.GetProperty("tables").GetArrayLength(), await page.Locator("section.table-section table.top").CountAsync());
        // the composition table's reader column links to that head's pattern
        var reader = page.Locator("section.table-section[data-section='Composition (circuits)'] a.head-link").First;
        string readerHead = await reader.InnerTextAsync();
        await reader.ClickAsync();
        Assert.Equal($"Attention pattern of head {readerHead}", await page.Locator("#pattern-title").InnerTextAsync());
        // the new grids are choices of the selector
        await page.Locator("#score-select").SelectOptionAsync(new SelectOptionValue { Label = "induction patching" });
        StringAssert(await page.Locator("#score-def").InnerTextAsync(), "induction patching:");
        // a score carrying a warning (patching on a gap too small or reversed) shows it above the grid; others hide it
        var patching = data.GetProperty("scores").EnumerateArray().Single(x => x.GetProperty("name").GetString() == "induction patching");
        if (CliRunner.Stories260K is not null)
        {
            // stories260K does not copy random tokens: its clean second-half loss is worse than the corrupted one's
            Assert.True(patching.TryGetProperty("warning", out _), "stories260K's induction patching must carry a warning");
        }
        if (patching.TryGetProperty("warning", out var warning))
        {
            Assert.True(await page.Locator("#score-warn").IsVisibleAsync());
            Assert.Contains(warning.GetString()!, await page.Locator("#score-warn").InnerTextAsync(), StringComparison.Ordinal);
            Assert.Contains("raw", patching.GetProperty("definition").GetString(), StringComparison.Ordinal);
        }
        await page.Locator("#score-select").SelectOptionAsync(new SelectOptionValue { Label = "induction" });
        Assert.False(await page.Locator("#score-warn").IsVisibleAsync());

        string shot = Path.Combine(outDir, "report.png");
        await page.Locator($"#pattern-svg rect.pcell[data-q='{q}'][data-k='{k}']").HoverAsync();
        await page.ScreenshotAsync(new() { Path = shot, FullPage = true });
        output.WriteLine($"screenshot: {shot}");
        output.WriteLine($"browser test took {clock.Elapsed.TotalSeconds:F1} s");

        Assert.Empty(errors);
        Assert.All(requests, u => Assert.StartsWith("file:", u, StringComparison.Ordinal));
    }

    private static void StringAssert(string actual, string expectedStart) => Assert.StartsWith(expectedStart, actual, StringComparison.Ordinal);

    [Fact]
    public async Task VitReportWorksInChromiumOffline()
    {
        Assert.SkipUnless(File.Exists(Chromium), $"{Chromium} is absent (install it with: apt-get install -y chromium)");
        string outDir = Path.Combine(AppContext.BaseDirectory, "report-browser-vit");
        Directory.CreateDirectory(outDir);
        string html = Path.Combine(outDir, "report.html");
        string vit = CliRunner.Golden("vit_cls");
        var r = CliRunner.Run("report", "--model", vit, "--image", Path.Combine(vit, "image.png"), "--clusters", "3", "--out", html, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(HtmlReport.ExtractDataJson(File.ReadAllText(html)));
        var data = doc.RootElement;
        int L = data.GetProperty("layers").GetInt32(), H = data.GetProperty("heads").GetInt32();
        int T = data.GetProperty("patterns").GetProperty("tokens").GetArrayLength();
        int images = data.GetProperty("images").GetArrayLength();

        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1200, Height = 900 } });
        var requests = new List<string>();
        var errors = new List<string>();
        page.Request += (_, req) => requests.Add(req.Url);
        page.PageError += (_, e) => errors.Add(e);
        page.Console += (_, m) =>
        {
            if (m.Type == "error")
            {
                errors.Add(m.Text);
            }
        };
        await page.RouteAsync("**/*", route => route.Request.Url.StartsWith("file:", StringComparison.Ordinal) || route.Request.Url.StartsWith("data:", StringComparison.Ordinal)
            ? route.ContinueAsync() : route.AbortAsync());
        await page.GotoAsync(new Uri(html).AbsoluteUri);

        Assert.Equal(L * H, await page.Locator("#grid .cell").CountAsync());
        // every head's overlay, the rollout and each cluster's prototype, as decoded pictures
        Assert.Equal(L * H + 1 + 3, images);
        Assert.Equal(images, await page.Locator("figure.report-image img").CountAsync());
        Assert.All(await page.Locator("figure.report-image img").EvaluateAllAsync<int[]>("imgs => imgs.map(i => i.naturalWidth)"), w => Assert.True(w > 0));
        // a ViT's pattern is bidirectional: every query × key cell is drawn
        await page.Locator("#grid .cell[data-layer='1'][data-head='2']").ClickAsync();
        Assert.Equal(T * T, await page.Locator("#pattern-svg rect.pcell").CountAsync());
        // clicking a head's overlay opens that head
        await page.Locator("figure.report-image img[alt='0.3']").ClickAsync();
        Assert.Equal("Attention pattern of head 0.3", await page.Locator("#pattern-title").InnerTextAsync());
        Assert.Equal(1, await page.Locator("section[data-section='Pattern clusters'] table").CountAsync());
        await page.ScreenshotAsync(new() { Path = Path.Combine(outDir, "report.png"), FullPage = true });
        Assert.Empty(errors);
        Assert.All(requests, u => Assert.True(u.StartsWith("file:", StringComparison.Ordinal) || u.StartsWith("data:", StringComparison.Ordinal), u));
    }
}
