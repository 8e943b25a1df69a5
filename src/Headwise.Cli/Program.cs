using System.CommandLine;
using Headwise.Cli;
using Headwise.Cli.Commands;

return CliMain.Run(args, Console.Out, Console.Error);

namespace Headwise.Cli
{
    /// <summary>Entry point: dispatches to a command and turns errors into one line and an exit code (0 done, 2 bad input, 1 internal error,
    /// 130 interrupted by Ctrl-C).</summary>
    public static class CliMain
    {
        /// <summary>Cancelled by Ctrl-C: long commands pass it to the analyses, which stop at the next unit of work.</summary>
        public static CancellationToken Cancellation => s_cancel.Token;

        private static readonly CancellationTokenSource s_cancel = new();

        static CliMain()
        {
            Console.CancelKeyPress += (_, e) =>
            {
                if (!s_cancel.IsCancellationRequested)
                {
                    e.Cancel = true; // first Ctrl-C: stop cleanly; a second one kills the process
                    s_cancel.Cancel();
                }
            };
        }

        public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
        {
            if (args.Length == 0 || args[0] is "--help" or "-h" or "help")
            {
                if (args.Length >= 2 && Find(args[1]) is { } c)
                {
                    stdout.WriteLine(c.Help);
                    return 0;
                }
                stdout.WriteLine(Overview());
                return args.Length == 0 ? 2 : 0;
            }
            if (args[0].StartsWith('['))
            {
                // directives: [suggest] answers shell completion (dotnet-suggest), [diagram] shows how a line parses
                return CliParser.ParseRoot(args).Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
            }
            if (args[0] is "--version")
            {
                stdout.WriteLine(typeof(CliMain).Assembly.GetName().Version?.ToString(3) ?? "0.1.0");
                return 0;
            }
            var command = Find(args[0]);
            if (command is null)
            {
                stderr.WriteLine($"headwise: unknown command '{args[0]}'. Commands: {string.Join(", ", CommandRegistry.All.Select(c => c.Name))}.");
                return 2;
            }
            if (args.Skip(1).Any(a => a is "--help" or "-h"))
            {
                stdout.WriteLine(command.Help);
                return 0;
            }
            try
            {
                var parsed = CliParser.Parse(command, args[1..]);
                try
                {
                    return command.Run(parsed, stdout, stderr);
                }
                finally
                {
                    ProgressBar.FinishAll(); // a live display still drawing ends before the error line below
                }
            }
            catch (UsageException e)
            {
                stderr.WriteLine($"headwise {command.Name}: {e.Message}");
                return 2;
            }
            catch (HeadwiseException e)
            {
                stderr.WriteLine($"headwise {command.Name}: {e.Message}");
                return 2;
            }
            catch (Exception e) when (s_cancel.IsCancellationRequested && IsCancellation(e))
            {
                // 130 = 128 + SIGINT, what shells report for a program stopped by Ctrl-C. On a terminal the line starts afresh:
                // the cursor sits after the echoed ^C, or at the end of a progress bar.
                string fresh = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected ? Environment.NewLine : "";
                stderr.WriteLine($"{fresh}headwise {command.Name}: interrupted{(e is InterruptedException ? $" ({e.Message})" : "")}");
                return 130;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"headwise {command.Name}: {e.Message}");
                return 2;
            }
            catch (Exception e)
            {
                stderr.WriteLine($"headwise {command.Name}: internal error: {e.GetType().Name}: {e.Message}");
                if (Environment.GetEnvironmentVariable("HEADWISE_DEBUG") is "1")
                {
                    stderr.WriteLine(e);
                }
                return 1;
            }
        }

        // Parallel loops wrap the cancellation of their bodies in an AggregateException.
        private static bool IsCancellation(Exception e) =>
            e is OperationCanceledException || (e is AggregateException a && a.Flatten().InnerExceptions.All(x => x is OperationCanceledException));

        private static ICommand? Find(string name) => CommandRegistry.All.FirstOrDefault(c => c.Name == name);

        private static string Overview()
        {
            var lines = new List<string>
            {
                "headwise — a workbench for the attention heads of transformer language models",
                "",
                "Usage: headwise <command> [options]      headwise <command> --help",
                "",
                "Commands:",
            };
            lines.AddRange(CommandRegistry.All.Select(c => $"  {c.Name,-10} {c.Summary}"));
            lines.Add("");
            lines.Add("Models: --model takes a Hugging Face model directory (config.json + *.safetensors + tokenizer.json),");
            lines.Add("or a llama2.c checkpoint (.bin) with --tokenizer tokenizer.bin. Exit codes: 0 done, 2 bad input, 1 internal error, 130 interrupted.");
            return string.Join(Environment.NewLine, lines);
        }
    }
}
