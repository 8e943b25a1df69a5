using Headwise.Tokenizers;

namespace Headwise.Analysis.Tasks;

/// <summary>
/// The prompt sets that come with the tool, each generated from a seed (same seed, same prompts) and scored by one metric:
/// <list type="bullet">
/// <item><c>induction</c> — random words, then the same words again; loss on the second half (induction heads lower it).</item>
/// <item><c>ioi</c> — indirect object identification: "When Mary and John went to the store, John gave a drink to" → " Mary";
/// corrupted: the second mention of the subject swapped to the other name; logit difference IO − S.</item>
/// <item><c>factual</c> — factual recall against a counterfactual prefix: "The capital of Poland is London. The capital of Poland is"
/// → logit difference counterfactual (" London") − true answer (" Warsaw"); corrupted: the prefix states the true fact.</item>
/// <item><c>laundry</c> — recall from a list (Talking Heads' "Laundry List"): four items in a varied order, three of them used,
/// "so all I have left is the" → the unused item; logit difference unused − mean of used; corrupted: another item left over.</item>
/// <item><c>greater-than</c> — "The war lasted from the year 1732 to the year 17" → probability on years &gt; 32 minus ≤ 32;
/// corrupted: start year 01.</item>
/// </list>
/// Word lists are small and inline: names, capitals and items are common single words, so most tokenizers give them one token.
/// </summary>
public static class TaskLibrary
{
    public static IReadOnlyList<string> Names { get; } = ["induction", "ioi", "factual", "laundry", "greater-than"];

    /// <summary>
    /// The prompts of task <paramref name="name"/>. With a <paramref name="tokenizer"/>, the swapped pairs of ioi (two
    /// names) and factual (two capitals) are drawn until both encode to the same number of tokens (up to 64 tries), so the
    /// corrupted prompt keeps the clean one's length — patching needs that, and small vocabularies split names unevenly.
    /// Without one, the same seed gives the same prompts as always.
    /// </summary>
    public static PromptTask Create(string name, int count = 8, int seed = 0, TextTokenizer? tokenizer = null)
    {
        if (count < 1 || count > 10_000)
        {
            throw new InvalidInputException($"task prompt count must be in [1, 10000] (got {count})");
        }
        return name switch
        {
            "induction" => Induction(count, seed),
            "ioi" => Ioi(count, seed, tokenizer),
            "factual" => Factual(count, seed, tokenizer),
            "laundry" => Laundry(count, seed),
            "greater-than" => GreaterThan(count, seed),
            _ => throw new InvalidInputException($"unknown task '{name}' (tasks: {string.Join(", ", Names)})"),
        };
    }

    private static readonly string[] Words =
        ["apple", "river", "house", "green", "music", "table", "night", "water", "chair", "light", "stone", "bread", "horse", "paper",
         "dream", "cloud", "money", "train", "glass", "plant", "smile", "south", "party", "heart", "sugar", "queen", "world", "field"];

    private static readonly string[] PersonNames =
        ["Mary", "John", "Tom", "James", "Anna", "Paul", "Mark", "Sarah", "Lisa", "David", "Kate", "Mike"];

    private static readonly string[] IoiTemplates =
    [
        "When {A} and {B} went to the store, {B} gave a drink to",
        "When {A} and {B} got a snack at the house, {B} decided to give it to",
        "After {A} and {B} went to the park, {B} gave a ball to",
        "Then, {A} and {B} had a long argument, and afterwards {B} said to",
    ];

    private static readonly (string Country, string Capital)[] Capitals =
    [
        ("Poland", "Warsaw"), ("France", "Paris"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("Spain", "Madrid"),
        ("England", "London"), ("Germany", "Berlin"), ("Russia", "Moscow"), ("Egypt", "Cairo"), ("Greece", "Athens"),
    ];

    private static readonly string[] Items = ["apples", "bread", "milk", "eggs", "rice", "cheese", "tea", "soap", "salt", "butter"];

    private static readonly string[] Events = ["war", "expedition", "drought", "project", "journey", "siege", "strike", "famine"];

    /// <summary>Random words (10 per half), then the same words again.</summary>
    public static PromptTask Induction(int count, int seed, int wordsPerHalf = 10)
    {
        var rng = new Random(seed);
        var prompts = new List<TaskPrompt>();
        for (int i = 0; i < count; i++)
        {
            var words = Enumerable.Range(0, wordsPerHalf).Select(_ => Words[rng.Next(Words.Length)]).ToArray();
            string half = string.Join(" ", words);
            prompts.Add(new TaskPrompt($"{half} {half}", null, [], [], FirstHalf: half));
        }
        return new PromptTask("induction", "random words, then the same words again", TaskMetric.SecondHalfLoss,
            "mean NLL of the second half's tokens after its first (nats; lower = better copying)", seed, prompts);
    }

    public static PromptTask Ioi(int count, int seed, TextTokenizer? tokenizer = null)
    {
        var rng = new Random(seed);
        var prompts = new List<TaskPrompt>();
        for (int i = 0; i < count; i++)
        {
            var two = PickPair(rng, PersonNames, n => " " + n, tokenizer);
            string t = IoiTemplates[rng.Next(IoiTemplates.Length)];
            string clean = t.Replace("{A}", two[0]).Replace("{B}", two[1]);
            // corrupted: the second mention swapped to the other name (same words, so the same token count), which makes
            // the subject the answer: "When Mary and John went to the store, Mary gave a drink to" → " John"
            int second = t.LastIndexOf("{B}", StringComparison.Ordinal);
            string corrupted = (t[..second] + two[0] + t[(second + 3)..]).Replace("{A}", two[0]).Replace("{B}", two[1]);
            prompts.Add(new TaskPrompt(clean, corrupted, [" " + two[0]], [" " + two[1]]));
        }
        return new PromptTask("ioi", "indirect object identification: who receives the object", TaskMetric.LogitDifference,
            "logit(indirect object) − logit(subject) at the last position", seed, prompts);
    }

    public static PromptTask Factual(int count, int seed, TextTokenizer? tokenizer = null)
    {
        var rng = new Random(seed);
        var prompts = new List<TaskPrompt>();
        for (int i = 0; i < count; i++)
        {
            var two = PickPair(rng, Capitals, c => " " + c.Capital, tokenizer);
            var (country, capital) = two[0];
            string fake = two[1].Capital;
            prompts.Add(new TaskPrompt($"The capital of {country} is {fake}. The capital of {country} is",
                $"The capital of {country} is {capital}. The capital of {country} is", [" " + fake], [" " + capital]));
        }
        return new PromptTask("factual", "factual recall against a counterfactual prefix", TaskMetric.LogitDifference,
            "logit(counterfactual answer from the prefix) − logit(true answer) at the last position", seed, prompts);
    }

    public static PromptTask Laundry(int count, int seed)
    {
        var rng = new Random(seed);
        var prompts = new List<TaskPrompt>();
        for (int i = 0; i < count; i++)
        {
            var four = Pick(rng, Items, 4);              // the list, in a random order
            int left = rng.Next(4), other = (left + 1 + rng.Next(3)) % 4;
            string Prompt(int unused)
            {
                var used = Enumerable.Range(0, 4).Where(j => j != unused).Select(j => four[j]).OrderBy(_ => rng.Next()).ToArray();
                return $"I bought {four[0]}, {four[1]}, {four[2]} and {four[3]}. I used the {used[0]}, the {used[1]} and the {used[2]}, so all I have left is the";
            }
            string clean = Prompt(left), corrupted = Prompt(other);
            prompts.Add(new TaskPrompt(clean, corrupted, [" " + four[left]],
                Enumerable.Range(0, 4).Where(j => j != left).Select(j => " " + four[j]).ToArray()));
        }
        return new PromptTask("laundry", "recall the one item of a list not yet used, list order varied", TaskMetric.LogitDifference,
            "logit(unused item) − mean logit(used items) at the last position", seed, prompts);
    }

    public static PromptTask GreaterThan(int count, int seed)
    {
        var rng = new Random(seed);
        var prompts = new List<TaskPrompt>();
        for (int i = 0; i < count; i++)
        {
            string noun = Events[rng.Next(Events.Length)];
            int century = 11 + rng.Next(7), yy = 2 + rng.Next(97);
            string Prompt(int start) => $"The {noun} lasted from the year {century}{start:00} to the year {century}";
            var later = Enumerable.Range(yy + 1, 99 - yy).Select(y => $"{y:00}").ToArray();
            var earlier = Enumerable.Range(0, yy + 1).Select(y => $"{y:00}").ToArray();
            prompts.Add(new TaskPrompt(Prompt(yy), Prompt(1), later, earlier));
        }
        return new PromptTask("greater-than", "years after the start year", TaskMetric.ProbabilityDifference,
            "p(two-digit year > start) − p(year ≤ start) at the last position", seed, prompts);
    }

    private static T[] Pick<T>(Random rng, T[] from, int k) => from.OrderBy(_ => rng.Next()).Take(k).ToArray();

    // two distinct items whose texts encode to equally many tokens (the first draw when there is no tokenizer)
    private static T[] PickPair<T>(Random rng, T[] from, Func<T, string> text, TextTokenizer? tokenizer)
    {
        var two = Pick(rng, from, 2);
        for (int attempt = 0; tokenizer is not null && attempt < 64; attempt++)
        {
            if (tokenizer.Encode(text(two[0]), addSpecial: false).Length == tokenizer.Encode(text(two[1]), addSpecial: false).Length)
            {
                break;
            }
            two = Pick(rng, from, 2);
        }
        return two;
    }

    /// <summary>
    /// Random token ids, then the same ids again: the induction task without a tokenizer (what TransformerLens' induction score
    /// uses). Ids are drawn from [<paramref name="minId"/>, vocab); <paramref name="bos"/>, when given, is prepended.
    /// </summary>
    public static TokenizedTask RepeatedTokens(int vocab, int half, int count, int seed, int? bos = null, int minId = 0)
    {
        if (half < 2 || vocab - minId < 2)
        {
            throw new InvalidInputException($"repeated tokens need a half of at least 2 (got {half}) and at least 2 ids to draw from");
        }
        var rng = new Random(seed);
        var prompts = new List<TokenizedPrompt>();
        for (int i = 0; i < count; i++)
        {
            var h = Enumerable.Range(0, half).Select(_ => minId + rng.Next(vocab - minId)).ToArray();
            int[] ids = bos is int b ? [b, .. h, .. h] : [.. h, .. h];
            int secondHalf = ids.Length - half;
            prompts.Add(new TokenizedPrompt(ids, null, [], [], LossFrom: secondHalf + 1));
        }
        return new TokenizedTask("repeated-tokens", TaskMetric.SecondHalfLoss,
            "mean NLL of the second half's tokens after its first (nats)", prompts, []);
    }

    /// <summary>
    /// Token ids for a task. Each answer is the first token the tokenizer gives after the prompt (it encodes prompt + answer and
    /// takes what follows the prompt's own ids, so a word's leading space is handled as the tokenizer handles it in context);
    /// an answer of several tokens is cut to its first, and <see cref="TokenizedTask.Notes"/> says so. When every answer and
    /// wrong answer begins with the same tokens (a lone space piece in a small vocabulary), those move into the prompt and the
    /// answers are scored at the first token where they differ. A corrupted prompt whose
    /// length differs from the clean one is dropped (patching needs equal lengths) and noted.
    /// </summary>
    public static TokenizedTask Tokenize(PromptTask task, TextTokenizer tokenizer)
    {
        var notes = new List<string>();
        var prompts = new List<TokenizedPrompt>();
        int multi = 0;
        foreach (var p in task.Prompts)
        {
            int[] clean = tokenizer.Encode(p.Clean);
            int[]? corrupted = p.Corrupted is null ? null : tokenizer.Encode(p.Corrupted);
            if (corrupted is not null && corrupted.Length != clean.Length)
            {
                notes.Add($"corrupted prompt has {corrupted.Length} tokens, clean {clean.Length}: dropped (\"{p.Corrupted}\")");
                corrupted = null;
            }
            int lossFrom = 1;
            if (p.FirstHalf is not null)
            {
                lossFrom = tokenizer.Encode(p.FirstHalf).Length + 1;
            }
            var answerSeqs = p.Answers.Select(a => Continuation(tokenizer, p.Clean, clean, a)).ToArray();
            var wrongSeqs = p.Wrong.Select(a => Continuation(tokenizer, p.Clean, clean, a)).ToArray();
            // Small vocabularies often start every name with the same piece (a lone space, a capital): the decision is made
            // at the first token where the answers differ, so a prefix they all share moves into the prompt.
            int shared = SharedPrefix(answerSeqs.Concat(wrongSeqs).ToArray());
            if (shared > 0 && wrongSeqs.Length > 0)
            {
                var prefix = answerSeqs[0][..shared];
                clean = [.. clean, .. prefix];
                corrupted = corrupted is null ? null : [.. corrupted, .. prefix];
                notes.Add($"every answer starts with the same {shared} token(s) ({string.Concat(prefix.Select(tokenizer.TokenText))}): appended to the prompt, answers scored at the next token: \"{p.Clean}\"");
            }
            int[] First(int[][] seqs) => seqs.Select(ids =>
            {
                if (ids.Length - shared != 1)
                {
                    multi++;
                }
                return ids[shared];
            }).ToArray();
            var answerIds = First(answerSeqs);
            var wrongIds = First(wrongSeqs);
            if (answerIds.Intersect(wrongIds).Any())
            {
                notes.Add($"an answer and a wrong answer share their first token ({tokenizer.TokenText(answerIds.Intersect(wrongIds).First())}): \"{p.Clean}\"");
            }
            prompts.Add(new TokenizedPrompt(clean, corrupted, answerIds, wrongIds, lossFrom));
        }
        if (multi > 0)
        {
            notes.Add($"{multi} answer(s) are several tokens: scored by their first token");
        }
        return new TokenizedTask(task.Name, task.Metric, task.MetricDefinition, prompts, notes);
    }

    // the longest run of leading tokens every sequence shares, leaving each at least one token of its own
    private static int SharedPrefix(int[][] seqs)
    {
        if (seqs.Length < 2)
        {
            return 0;
        }
        int n = 0;
        while (seqs.All(q => q.Length > n + 1) && seqs.All(q => q[n] == seqs[0][n]))
        {
            n++;
        }
        return n;
    }

    /// <summary>The tokens an answer adds after a prompt: the tail of encode(prompt + answer) beyond the prompt's own ids (so
    /// " Mary" after "… to" is the single token a model would predict, whatever the tokenizer does with a leading space);
    /// the answer encoded alone when the joint encoding does not extend the prompt's. Patching, tasks and DLA all read
    /// answers this way. <paramref name="addSpecial"/> as the prompt was encoded (BOS or not).</summary>
    public static int[] Continuation(TextTokenizer tokenizer, string prompt, int[] promptIds, string answer, bool addSpecial = true)
    {
        var full = tokenizer.Encode(prompt + answer, addSpecial);
        if (full.Length > promptIds.Length && full.AsSpan(0, promptIds.Length).SequenceEqual(promptIds))
        {
            return full[promptIds.Length..];
        }
        var alone = tokenizer.Encode(answer, addSpecial: false);
        return alone.Length > 0 ? alone : throw new InvalidInputException($"answer '{answer}' encodes to no tokens");
    }
}
