using System.Diagnostics;

namespace Headwise.Compute;

/// <summary>
/// Runs a few short tasks on the calling thread plus parked worker threads, for the decode GEMVs: a decode step makes about 49
/// of them per token (GPT-2 small), each a few hundred µs, and <c>Parallel.For</c>'s hand-off (queueing to the pool, waking a
/// pool thread, its bookkeeping allocations) costs several µs each. Prefill's GEMMs and blocked attention use it too (about
/// 5 jobs per layer), so that no pool thread competes with a worker still spinning after the previous job. The workers spin for a while after each job, so the next
/// GEMV of the step finds them awake, then sleep until the next job. Tasks are claimed in any order by any thread: callers
/// give tasks whose results do not depend on which thread runs them (the GEMV's output rows, its per-task partial sums).
/// One caller at a time; a second caller (another thread's forward) gets false from <see cref="TryRun"/> and runs its own
/// <c>Parallel.For</c>.
/// </summary>
internal sealed class WorkerTeam
{
    internal static readonly WorkerTeam Shared = new();

    // how long a worker spins for the next job before it sleeps: longer than the gaps between a decode step's GEMVs
    // (norms, attention, the sampling between tokens: tens of µs), short enough not to burn a core when decoding stops
    private static readonly long SpinTicks = Stopwatch.Frequency / 5000; // 200 µs

    private readonly object _callerLock = new();
    private readonly object _sleepLock = new();
    private readonly List<Thread> _threads = [];
    private long _claim;          // (job generation << 32) | next task index: a claim names its job, so a late worker cannot take a task of the next
    private int _tasks, _remaining, _helpers, _sleepers;
    private Action<int>? _body;

    /// <summary>Runs body(0 .. tasks − 1) on this thread and up to <paramref name="threads"/> − 1 workers, returning when all
    /// are done; false (nothing run) when another thread is using the team.</summary>
    public bool TryRun(Action<int> body, int tasks, int threads)
    {
        if (!Monitor.TryEnter(_callerLock))
        {
            return false;
        }
        try
        {
            int helpers = Math.Min(threads, tasks) - 1;
            while (_threads.Count < helpers)
            {
                int index = _threads.Count;
                var thread = new Thread(() => WorkerLoop(index)) { IsBackground = true, Name = $"headwise-gemv-{index}" };
                _threads.Add(thread);
                thread.Start();
            }
            _body = body;
            _tasks = tasks;
            _helpers = helpers;
            _remaining = tasks;
            int generation = (int)(Volatile.Read(ref _claim) >> 32) + 1;
            Interlocked.Exchange(ref _claim, (long)generation << 32); // publishes the fields above (full fence)
            if (Volatile.Read(ref _sleepers) > 0)
            {
                lock (_sleepLock)
                {
                    Monitor.PulseAll(_sleepLock);
                }
            }
            RunTasks(generation);
            var spin = new SpinWait();
            while (Volatile.Read(ref _remaining) > 0)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
            _body = null;
            return true;
        }
        finally
        {
            Monitor.Exit(_callerLock);
        }
    }

    private void RunTasks(int generation)
    {
        while (true)
        {
            long claim = Volatile.Read(ref _claim);
            int task = (int)claim;
            if ((int)(claim >> 32) != generation || task >= Volatile.Read(ref _tasks))
            {
                return;
            }
            if (Interlocked.CompareExchange(ref _claim, claim + 1, claim) != claim)
            {
                continue;
            }
            // the claim succeeded under this generation, so the job's fields are this job's until its last task is done
            _body!(task);
            Interlocked.Decrement(ref _remaining);
        }
    }

    private void WorkerLoop(int index)
    {
        int seen = (int)(Volatile.Read(ref _claim) >> 32);
        while (true)
        {
            int generation = WaitForJob(seen);
            seen = generation;
            if (index < Volatile.Read(ref _helpers))
            {
                RunTasks(generation);
            }
        }
    }

    private int WaitForJob(int seen)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            int generation = (int)(Volatile.Read(ref _claim) >> 32);
            if (generation != seen)
            {
                return generation;
            }
            if (Stopwatch.GetTimestamp() - start < SpinTicks)
            {
                Thread.SpinWait(20);
                continue;
            }
            lock (_sleepLock)
            {
                Interlocked.Increment(ref _sleepers); // full fence: a caller that publishes after this read sees a sleeper and pulses
                while ((int)(Volatile.Read(ref _claim) >> 32) == seen)
                {
                    Monitor.Wait(_sleepLock);
                }
                Interlocked.Decrement(ref _sleepers);
            }
        }
    }
}
