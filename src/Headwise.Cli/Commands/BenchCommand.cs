using Headwise.Benchmarks;
using Headwise.Compute;
using Headwise.Loading;

namespace Headwise.Cli.Commands;

public sealed class BenchCommand : ICommand
{
    public string Name => "bench";
    public string Summary => "measure the engine: GEMM, prefill, decode, hooks, loading — as ratios to baselines from the same run";
    public string Usage => """
        headwise bench [--quick] [--json] [--threads N] [--tokens T] [--skip-load] [--importance] [--training] [--primitives] [--recipes] [--influence] [--onnx] [--pytorch]
                       [--variants] [--attention-kernels] [--gemm-shapes] [--gemv-layouts] [--vit] [--mla] [--long-context] [--gated-mlp]
        headwise bench --decode-only [--quick] [--json] [--threads N]
        """;

    public string Description => """
        Measures the engine on this machine, each figure against a baseline measured in the same run
        (machines are noisy; ratios travel better than absolute numbers):
          gemm     Kernels.MatMul at 1024³, one thread and all threads, against the scalar twin and OpenBLAS
                   (libopenblas0-pthread, when installed); target ≥ 1.3× OpenBLAS on one thread
          prefill  a GPT-2-small-shaped model (124M, random weights) over T tokens (default 512), batch 1:
                   tokens/s and effective GFLOP/s, as a fraction of our own multi-threaded GEMM rate; target ≥ 0.70
          prepack  the same prefill with its weights packed once for the GEMM (the default) against packed on every
                   call, alternating: the speed-up, and resident memory (weights + packed copies) ÷ weights
          decode   one token at a time with the KV cache, against the bound of reading every weight once per token
                   at the machine's memory bandwidth, measured in alternation: 7 rounds (3 with --quick), each a bandwidth
                   probe (256 MiB read on all threads; 64 MiB with --quick) then 32 decode steps (8); the median of the
                   per-round ratios, which a neighbour slowing both alike leaves unchanged; target ≥ 0.90.
                   --decode-only runs just this on the GPT-2-small shape (all 12 layers, also with --quick)
          hooks    a forward with one no-op hook, and with a full activation cache, relative to a plain forward
          load     write a random 500 MB F32 checkpoint, then time loading it (memory-mapped) and measure resident memory
                   growth through a first forward, relative to the weights' size; target < 1 s and ≤ 1.1×
          importance  (with --importance; minutes) a head-importance scan over every head of the GPT-2-small-shaped model
                   on 1,000 tokens, relative to heads × one full forward; target ≤ 0.6
          training (with --training) the demo model's shape (GPT-2, 4 layers, d_model 128, 4 heads, vocab 4097, seq 128, batch 16):
                   training tokens/s, and the backward's cost as a multiple of the forward's; target ≤ 2.5×
          primitives (with --primitives; half a minute, one thread) our vector kernels against System.Numerics.Tensors'
                   TensorPrimitives — add, scale, axpy, max, sum, dot, F16 → F32 at 768, 3,072 and 50,257 floats (F16 also
                   at 2.4M halves): library time / ours per operation, and whether each library reduction keeps its bits
                   wherever its input starts in memory; not shortened by --quick
          recipes  (with --recipes; seconds) intervention recipes on the bundled demo model (models/demo, 128 tokens; else a
                   random 2-layer GPT-2-small-shaped model on T tokens): a forward under an empty recipe, and with one head
                   softened, scaled, sink-redistributed, each as a ratio to a plain forward timed in the same rounds;
                   targets: empty 1.0×, soften ≤ 1.1×; then `search` with budget 3 over every head (soften s = 1,
                   loss up) on the same model and input, its wall time as a multiple of one plain forward
          influence (with --influence; a minute) `headwise influence` on the demo model, head 2.1 masked, 400 random
                   documents of realistic lengths: documents/s and tokens/s against the model's prefill tokens/s at full
                   context in the same run, and the ratio its FLOPs would give at prefill's FLOP rate: half-overlapping
                   windows and two runs per window (clean, masked from the head's layer) cost more than a forward per token
          variants (with --variants; minutes) training tokens/s of every attention variant (docs/variants.md) on the demo
                   model's shape with only the attention swapped, each as a ratio to softmax's in the same run (tensor,
                   O(T³), is skipped at sequence 128; --quick: sequence 32, batch 2)
          vit      (with --vit; a minute) images/s of the bundled MNIST ViT (models/mnist-vit) at batch 1 and 64, and
                   with Sparsifiner attention at 1/2 and 1/4 of the keys per query (the gathered kernel; also the hooked
                   reference, which computes every score); of a ViT-Base/16-shaped random model at 224² (86M parameters,
                   batch 1), unpruned, with token pruning at KEEP 0.7 and 0.5 (blocks 3, 6, 9) and with Sparsifiner at
                   1/2 and 1/4 of the keys: images/s and the speed-ups; Sparsifiner rows add one layer's attention alone
                   (selection + gathered kernel against the dense blocked kernel)
          onnx     (with --onnx; a few minutes) prefill against ONNX Runtime 1.31 on the same model and weights (the forward
                   written as an ONNX graph, ORT_SEQUENTIAL, every graph optimisation), at 128, 512 and 1,024 tokens (32
                   and 64 with --quick), on 1 and all threads: Headwise tokens/s ÷ ORT tokens/s, the median of 5 rounds
                   (1 with --quick) that time the two alternately, each forward after 50 ms idle (ORT's threads spin
                   after a run), after checking that both give the same mean NLL to 1e-5 (the benchmark fails when not); each
                   engine's FLOP rate as a share of the FMA peak of that many threads (measured in the run), and the ceiling: the
                   ratio a forward at that peak would reach, which no engine can beat on the machine
          pytorch  (with --pytorch; several minutes) the same against PyTorch eager: dev/bench/torch_prefill.py runs
                   dev/reference's Hugging Face GPT-2 forward on the model saved as a checkpoint (python3 with torch:
                   HEADWISE_PYTHON, /usr/bin/python3 or python3), NLL checked to 1e-5, 200 ms idle before each forward; the
                   same peak shares and ceiling
          attention-kernels (with --attention-kernels; a minute or two) attention alone, the fused kernel (three passes per
                   row) against the blocked one (query × key tiles, online softmax), causal prefill at 512, 1,024 and 4,096
                   tokens (128 and 256 with --quick) on a GPT-2-small head shape (NH 12, HD 64) and a Llama GQA shape
                   (NH 32, NKV 8, HD 128), on 1 and all threads: GFLOP/s of each (causal pairs only) and blocked ÷ fused speed
          gemm-shapes (with --gemm-shapes; a minute or two) every GEMM of a GPT-2-small forward at the model's shapes
                   (q|k|v 768 → 2,304, attention output 768 → 768, MLP 768 → 3,072 and 3,072 → 768, unembedding
                   768 → 50,257), weights prepacked as prefill runs them, at M = 128, 512 and 1,024 rows (64 and 128 with
                   --quick), on 1 and all threads alternately: GFLOP/s and the share of the FMA peak (one core's, measured
                   in the same run by a register-only FMA loop, times the threads); targets ≥ 80% on 1 thread, ≥ 75% on 2
          gemv-layouts (with --gemv-layouts; a minute) decode-sized products (1 and 4 rows) at the same shapes, each weight
                   streamed three ways — the unpacked GEMV from Conv1D's (in, out) layout, from nn.Linear's (out, in), and
                   the packed GEMV from the GEMM's panels — twelve weights of a shape cycled so that each product reads
                   memory, on 1 and all threads alternately: weight GB/s and its share of the memory bandwidth above
          gated-mlp (with --gated-mlp; a minute) prefill of T tokens on a random Llama-shaped model (8 layers, d_model
                   1024, MLP 2816, GQA 16/4 heads; --quick: 2 layers, d_model 256) with silu(gate)·up in the gate GEMM's store
                   against the separate SwiGLU pass (forced by a no-op hook on every layer's hook_post), alternating in
                   rounds: the speed-up, and whether the logits agree to the bit
          mla      (with --mla; minutes, about 1.5 GB of memory) decode tokens/s at 4K and 16K context of a random
                   grouped-query Llama (8 layers, d_model 1024, 16 heads of 64, 4 kv heads, MLP 2816, vocab 4096) and of
                   its MLA conversions (convert mla, Headwise layout) at kv fractions 0.5 and 0.25, the cache pre-filled
                   (no prefill); with the KV-cache bytes per token and read per decoded token (--quick: 2 layers,
                   d_model 256, context 512 and 1K)
          long-context (with --long-context; about ten minutes on two cores, 2 GB of memory) attention alone (the blocked
                   kernel) on one random Llama-shaped layer (NH 32, NKV 8, HD 128, RoPE'd q/k), causal prefill at 4K, 16K
                   and 32K tokens (1K and 2K with --quick): dense, topk-blocks:64,K with K for a density nearest 10%, and
                   window:4096,sinks:4 — seconds, density, the policy's selection time, speed-up vs dense in the same
                   rounds (median of 3; one round at 32K), and the memory of the 32K prefill (computed and measured)
        Figures are medians of repeated runs after a warm-up. Record them in docs/performance.md with this command.
        """;

    public IReadOnlyList<CliOption> Options { get; } =
    [
        CliOption.Flag("quick", "small sizes, for a smoke test (seconds, not minutes); the figures are not the targets' figures"),
        CliOption.Flag("decode-only", "only decode against the bandwidth bound (alternating rounds) on the full GPT-2-small shape"),
        CliOption.Integer("tokens", "T", "prefill length (default 512)"),
        CliOption.Integer("threads", "N", "worker threads (default: all cores)"),
        CliOption.Flag("skip-load", "skip the 500 MB loading measurement (it writes to the temp folder)"),
        CliOption.Flag("importance", "also time the head-importance scan (long)"),
        CliOption.Flag("training", "also time training steps"),
        CliOption.Flag("primitives", "also compare our vector kernels with TensorPrimitives"),
        CliOption.Flag("recipes", "also time intervention recipes against a plain forward"),
        CliOption.Flag("influence", "also time `headwise influence` on the demo model against its prefill tokens/s"),
        CliOption.Flag("onnx", "also compare prefill with ONNX Runtime's on the same weights"),
        CliOption.Flag("pytorch", "also compare prefill with PyTorch eager's on the same weights (needs python3 with torch)"),
        CliOption.Flag("variants", "also time training steps of every attention variant against softmax"),
        CliOption.Flag("attention-kernels", "also time the fused attention kernel against the blocked one"),
        CliOption.Flag("gemm-shapes", "also time every GEMM of a GPT-2-small forward at its shapes against the measured FMA peak"),
        CliOption.Flag("gemv-layouts", "also time decode-sized products streamed from either weight layout and from the packed panels"),
        CliOption.Flag("vit", "also time ViT forwards (MNIST ViT, ViT-Base shape, token pruning, Sparsifiner)"),
        CliOption.Flag("gated-mlp", "also time a Llama-shaped prefill with SiLU·up fused in the GEMM's store against the separate pass"),
        CliOption.Flag("mla", "also time decode of a grouped-query model against its MLA conversions at long contexts"),
        CliOption.Flag("long-context", "also time sparse attention (topk-blocks, window + sinks) against dense at 4K–32K tokens"),
        CliOption.Flag("json", "print one JSON object (schema in docs/cli.md)"),
    ];

    public string Examples => """
        Example:
          dotnet run --project src/Headwise.Cli -c Release -- bench
        """;

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool json = args.Flag("json");
        bool quick = args.Flag("quick");
        bool skipLoad = args.Flag("skip-load");
        bool importance = args.Flag("importance");
        bool training = args.Flag("training");
        bool primitives = args.Flag("primitives");
        bool recipes = args.Flag("recipes");
        bool influence = args.Flag("influence");
        bool onnx = args.Flag("onnx");
        bool pytorch = args.Flag("pytorch");
        bool variants = args.Flag("variants");
        bool attentionKernels = args.Flag("attention-kernels");
        ModelArgs.ApplyThreads(args);
        int tokens = args.GetInt("tokens", quick ? 64 : 512, 1, 1024);
        int threads = Kernels.MaxThreads;
        var cancel = CliMain.Cancellation;

        // each benchmark stops at its next timed run on Ctrl-C; the phases check too (building the model is one long call)
        void Progress(string what)
        {
            cancel.ThrowIfCancellationRequested();
            if (!json)
            {
                stderr.WriteLine($"[bench] {what}…");
            }
        }

        if (args.Flag("decode-only"))
        {
            Progress("building a random GPT-2-small-shaped model");
            using var small = ModelBenchmarks.RandomModel(ModelConfig.Gpt2Small);
            Progress("decode against the memory bandwidth, alternating rounds");
            var only = DecodeRounds(small, quick, threads, cancel);
            if (json)
            {
                stdout.WriteLine(Json.Serialize(new { threads, decode = DecodeJson(only) }));
            }
            else
            {
                stdout.WriteLine(DecodeLine(only));
            }
            return 0;
        }

        Progress("GEMM");
        var gemm = GemmBenchmark.Run(quick ? 256 : 1024, threads, quick ? 2 : 5, cancel);
        Progress("memory bandwidth");
        var bandwidth = MemoryBandwidthBenchmark.Run(quick ? 64 : 512, threads, quick ? 2 : 5, cancel);

        var config = quick ? ModelConfig.Gpt2Small with { NLayers = 2, VocabSize = 4096 } : ModelConfig.Gpt2Small;
        Progress($"building a random {(quick ? "2-layer " : "")}GPT-2-small-shaped model");
        using var model = ModelBenchmarks.RandomModel(config);
        Progress($"prefill of {tokens} tokens");
        var prefill = ModelBenchmarks.Prefill(model, tokens, quick ? 1 : 3, cancel);
        Progress($"prefill of {tokens} tokens, weights prepacked against packed on every call");
        var prepack = ModelBenchmarks.PrefillPrepack(model, tokens, quick ? 1 : 3, cancel);
        OnnxComparisonResult? ort = null;
        if (onnx)
        {
            Progress("prefill against ONNX Runtime (checking the NLLs agree first)");
            ort = OnnxComparison.Compare(model, quick ? [32, 64] : [128, 512, 1024], threads > 1 ? [1, threads] : [1], quick ? 1 : 5, cancel);
        }
        PyTorchComparisonResult? torchRuns = null;
        string? torchSkipped = null;
        if (pytorch)
        {
            string? python = PyTorchComparison.FindPython(out string why), script = PyTorchComparison.FindScript();
            if (python is null) torchSkipped = why;
            else if (script is null) torchSkipped = "dev/bench/torch_prefill.py not found above the current directory (run from the repository)";
            else
            {
                Progress($"prefill against PyTorch eager ({python}; checking the NLLs agree first)");
                torchRuns = PyTorchComparison.Compare(model, python, script, quick ? [32, 64] : [128, 512, 1024],
                    threads > 1 ? [1, threads] : [1], quick ? 1 : 3, cancel);
            }
        }
        Progress("decode against the memory bandwidth, alternating rounds");
        var decode = DecodeRounds(model, quick, threads, cancel);
        Progress("hook overhead");
        var hooks = ModelBenchmarks.Hooks(model, tokens, quick ? 1 : 3, cancel);

        LoadResult? load = null;
        if (!skipLoad)
        {
            Progress(quick ? "loading a small checkpoint" : "writing and loading a 500 MB checkpoint");
            string dir = Path.Combine(Path.GetTempPath(), $"headwise-bench-{Environment.ProcessId}");
            try
            {
                load = ModelBenchmarks.Load(quick ? config : ModelConfig.Gpt2Small, dir, cancel);
            }
            finally
            {
                if (Directory.Exists(dir))
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
        }

        ImportanceScanResult? scan = null;
        if (importance)
        {
            Progress("importance scan over every head");
            scan = InterventionBenchmarks.ImportanceScan(quick, cancel);
        }

        TrainingBenchResult? train = null;
        if (training)
        {
            Progress("training steps");
            train = TrainingBenchmarks.Run(threads: threads, reps: quick ? 2 : 5, cancel: cancel);
        }

        IReadOnlyList<PrimitiveTiming>? prims = null;
        if (primitives)
        {
            Progress("vector kernels against TensorPrimitives");
            prims = PrimitivesBenchmark.Run(cancel: cancel);
        }

        string? recipeModel = null;
        int recipeTokens = 0;
        IReadOnlyList<RecipeCost>? recipeCosts = null;
        SearchCost? searchCost = null;
        if (recipes)
        {
            // the demo model is the one users run recipes on; without it, a small random model of the same family
            string? demo = DemoCommand.FindDemoModel();
            Progress($"intervention recipes on {(demo is null ? "a random 2-layer GPT-2-small-shaped model" : demo)}");
            using var loaded = demo is null ? null : ModelLoader.Load(demo);
            using var random = demo is null ? ModelBenchmarks.RandomModel(ModelConfig.Gpt2Small with { NLayers = 2, VocabSize = 4096 }) : null;
            var recipeTarget = loaded?.Model ?? random!;
            recipeModel = demo is null ? "gpt2-small-shaped, 2 layers, vocab 4096 (random)" : "demo (models/demo)";
            recipeTokens = demo is null ? tokens : Math.Min(args.Has("tokens") ? tokens : 128, recipeTarget.Config.MaxPositions);
            recipeCosts = InterventionBenchmarks.Recipes(recipeTarget, recipeTokens, rounds: 21, cancel: cancel);
            Progress("head search (budget 3, every head)");
            searchCost = InterventionBenchmarks.Search(recipeTarget, recipeTokens, budget: 3, cancel: cancel);
        }

        InfluenceBenchResult? influenceCost = null;
        if (influence)
        {
            // the bundled demo model, head 2.1 zero-ablated (the masked run resumes at layer 2 of 4: the bound is 1/1.5 = 0.67)
            string demo = DemoCommand.FindDemoModel() ?? throw new UsageException("--influence needs the bundled demo model (models/demo)");
            Progress("influence on the demo model (400 documents)");
            using var loaded = ModelLoader.Load(demo);
            influenceCost = InfluenceBenchmark.Run(loaded.Model, [new Analysis.HeadId(2, 1)], documents: quick ? 40 : 400, reps: quick ? 1 : 3, cancel: cancel);
        }

        IReadOnlyList<MlaDecodeRow>? mlaRows = null;
        GatedFusionResult? gated = null;
        if (args.Flag("gated-mlp"))
        {
            Progress($"prefill of {tokens} tokens on a random Llama-shaped model, SiLU·up fused against the separate pass");
            using var llama = ModelBenchmarks.RandomModel(MlaDecodeBenchmark.Shape(quick));
            gated = ModelBenchmarks.PrefillGatedFusion(llama, tokens, quick ? 2 : 5, cancel);
        }
        if (args.Flag("mla"))
        {
            Progress("decode of a grouped-query model against its MLA conversions");
            mlaRows = MlaDecodeBenchmark.Run(MlaDecodeBenchmark.Shape(quick), quick ? [512, 1024] : [4096, 16384], [0.5, 0.25],
                reps: quick ? 1 : 3, cancel: cancel);
        }

        IReadOnlyList<VariantSpeedResult>? variantSpeeds = null;
        if (variants)
        {
            Progress("training steps of every attention variant");
            var shape = quick ? TrainingBenchmarks.DemoConfig with { SeqLen = 32 } : TrainingBenchmarks.DemoConfig;
            variantSpeeds = TrainingBenchmarks.Variants(shape, batch: quick ? 2 : 0, threads: threads, reps: quick ? 1 : 3, cancel: cancel);
        }

        IReadOnlyList<AttentionTiming>? attention = null;
        if (attentionKernels)
        {
            Progress("attention kernels: fused against blocked");
            attention = AttentionBenchmark.Run(quick ? [128, 256] : [512, 1024, 4096], threads > 1 ? [1, threads] : [1], quick ? 1 : 5, cancel);
        }

        GemmShapesResult? gemmShapes = null;
        if (args.Flag("gemm-shapes"))
        {
            Progress("GEMMs at the model's shapes against the FMA peak");
            gemmShapes = GemmShapesBenchmark.Run(quick ? [64, 128] : [128, 512, 1024], threads, quick ? 3 : 5, cancel);
        }

        IReadOnlyList<GemvLayoutTiming>? gemvLayouts = null;
        if (args.Flag("gemv-layouts"))
        {
            Progress("decode-sized products from each weight layout and from the packed panels");
            gemvLayouts = GemvLayoutBenchmark.Run(bandwidth, threads, quick ? 5 : 21, quick, cancel);
        }

        LongContextResult? longContext = null;
        if (args.Flag("long-context"))
        {
            Progress("long-context sparse attention");
            longContext = LongContextBenchmark.Run(quick ? [1024, 2048] : [4096, 16384, 32768], reps: quick ? 1 : 3,
                progress: what => Progress(what), cancel: cancel);
        }

        VitBenchResult? vitSpeeds = null;
        if (args.Flag("vit"))
        {
            Progress("ViT forwards");
            vitSpeeds = VitBenchmark.Run(VitBenchmark.FindBundledModel("mnist-vit"), quick, quick ? 1 : 3, cancel, what => Progress(what));
        }

        var result = new
        {
            quick,
            threads,
            isa = gemm.Isa,
            gemm = new
            {
                n = gemm.N,
                ours_1t_gflops = gemm.OursSingleThread,
                ours_mt_gflops = gemm.OursMultiThread,
                naive_n = gemm.NaiveN,
                naive_1t_gflops = gemm.NaiveSingleThread,
                openblas_1t_gflops = gemm.OpenBlasSingleThread,
                openblas_mt_gflops = gemm.OpenBlasMultiThread,
                openblas_status = gemm.OpenBlasStatus,
                ratio_1t_vs_openblas = gemm.OpenBlasSingleThread is double b1 ? gemm.OursSingleThread / b1 : (double?)null,
                ratio_mt_vs_openblas = gemm.OpenBlasMultiThread is double bm ? gemm.OursMultiThread / bm : (double?)null,
                ratio_1t_vs_naive = gemm.OursSingleThread / gemm.NaiveSingleThread,
            },
            memory_bandwidth = new { bytes = bandwidth.Bytes, gbps_1t = bandwidth.SingleThreadGBps, gbps_mt = bandwidth.MultiThreadGBps },
            prefill = new
            {
                model = quick ? "gpt2-small-shaped, 2 layers, vocab 4096" : "gpt2-small-shaped (124M)",
                tokens = prefill.Tokens,
                seconds = prefill.Seconds,
                tokens_per_s = prefill.TokensPerSecond,
                gflops = prefill.GFlops,
                ratio_vs_own_gemm = prefill.GFlops / gemm.OursMultiThread,
            },
            prepack = new
            {
                tokens = prepack.Tokens,
                unpacked_s = prepack.UnpackedSeconds,
                packed_s = prepack.PackedSeconds,
                speedup = prepack.Speedup,
                weight_bytes = prepack.WeightBytes,
                packed_bytes = prepack.PackedBytes,
                resident_ratio = prepack.ResidentRatio,
            },
            decode = DecodeJson(decode),
            gated_mlp = gated is null ? null : new
            {
                tokens = gated.Tokens,
                fused_s = gated.FusedSeconds,
                split_s = gated.SplitSeconds,
                speedup = gated.Speedup,
                bitwise = gated.Bitwise,
            },
            hooks = new
            {
                plain_s = hooks.PlainSeconds,
                noop_hook_ratio = hooks.NoOpRatio,
                full_cache_ratio = hooks.FullCacheRatio,
                reused_cache_ratio = hooks.ReusedCacheRatio,
            },
            load = load is null ? null : new
            {
                checkpoint_bytes = load.CheckpointBytes,
                load_s = load.LoadSeconds,
                first_forward_s = load.FirstForwardSeconds,
                rss_growth_bytes = load.RssGrowthBytes,
                rss_ratio = load.RssRatio,
                memory_mapped = load.AllMapped,
            },
            importance = scan is null ? null : new
            {
                shape = scan.Shape,
                tokens = scan.Tokens,
                heads = scan.Heads,
                forward_s = scan.ForwardSeconds,
                scan_s = scan.ScanSeconds,
                ratio_vs_heads_forwards = scan.Ratio,
            },
            training = train is null ? null : new
            {
                shape = train.Shape,
                batch = train.Batch,
                seq_len = train.SeqLen,
                parameters = train.Parameters,
                tokens_per_s = train.TokensPerSecond,
                forward_s = train.ForwardSeconds,
                backward_s = train.BackwardSeconds,
                step_s = train.StepSeconds,
                backward_to_forward = train.BackwardToForward,
                backward_to_forward_cpu = train.BackwardToForwardCpu,
            },
            primitives = prims?.Select(p => new
            {
                operation = p.Operation,
                n = p.Length,
                ours_ns = p.OursNs,
                library_ns = p.LibraryNs,
                library_over_ours = p.LibraryOverOurs,
                library_same_bits_at_every_alignment = p.LibrarySameBitsAtEveryAlignment,
            }).ToArray(),
            recipes = recipeCosts?.Select(r => new
            {
                recipe = r.Recipe,
                model = recipeModel,
                tokens = recipeTokens,
                plain_ms = r.PlainMs,
                recipe_ms = r.RecipeMs,
                ratio = r.Ratio,
            }).ToArray(),
            onnx = ort is null ? null : new
            {
                ort_version = ort.OrtVersion,
                max_logit_diff = ort.MaxLogitDiff,
                max_nll_diff = ort.MaxNllDiff,
                nll = ort.Nll,
                runs = ort.Timings.Select(t => new
                {
                    tokens = t.Tokens,
                    threads = t.Threads,
                    headwise_s = t.HeadwiseSeconds,
                    ort_s = t.OrtSeconds,
                    headwise_tokens_per_s = t.HeadwiseTokensPerSecond,
                    ort_tokens_per_s = t.OrtTokensPerSecond,
                    ratio = t.Ratio,
                    forward_gflop = t.ForwardGFlop,
                    peak_gflops = t.PeakGFlops,
                    headwise_of_peak = t.HeadwiseOfPeak,
                    ort_of_peak = t.OrtOfPeak,
                    ceiling_ratio = t.CeilingRatio,
                }).ToArray(),
            },
            pytorch = !pytorch ? null : new
            {
                skipped = torchSkipped,
                python = torchRuns?.Python,
                torch_version = torchRuns?.TorchVersion,
                blas = torchRuns?.Blas,
                max_nll_diff = torchRuns?.MaxNllDiff,
                nll = torchRuns?.Nll,
                runs = torchRuns?.Timings.Select(t => new
                {
                    tokens = t.Tokens,
                    threads = t.Threads,
                    headwise_s = t.HeadwiseSeconds,
                    torch_s = t.TorchSeconds,
                    headwise_tokens_per_s = t.HeadwiseTokensPerSecond,
                    torch_tokens_per_s = t.TorchTokensPerSecond,
                    ratio = t.Ratio,
                    forward_gflop = t.ForwardGFlop,
                    peak_gflops = t.PeakGFlops,
                    headwise_of_peak = t.HeadwiseOfPeak,
                    torch_of_peak = t.TorchOfPeak,
                    ceiling_ratio = t.CeilingRatio,
                }).ToArray(),
            },
            variants = variantSpeeds?.Select(v => new
            {
                variant = v.Variant,
                step_s = v.Skipped is null ? v.StepSeconds : (double?)null,
                tokens_per_s = v.Skipped is null ? v.TokensPerSecond : (double?)null,
                ratio = v.Skipped is null ? v.Ratio : (double?)null,
                skipped = v.Skipped,
            }).ToArray(),
            attention_kernels = attention?.Select(a => new
            {
                shape = a.Shape,
                nh = a.NH,
                nkv = a.NKV,
                hd = a.HD,
                tokens = a.Tokens,
                threads = a.Threads,
                fused_s = a.FusedSeconds,
                blocked_s = a.BlockedSeconds,
                fused_gflops = a.FusedGFlops,
                blocked_gflops = a.BlockedGFlops,
                speedup = a.Speedup,
            }).ToArray(),
            gemm_shapes = gemmShapes is null ? null : GemmShapesBenchmark.Json(gemmShapes),
            gemv_layouts = gemvLayouts is null ? null : GemvLayoutBenchmark.Json(gemvLayouts),
            vit = vitSpeeds is null ? null : VitBenchmark.Json(vitSpeeds),
            long_context = longContext is null ? null : LongContextBenchmark.Json(longContext),
            mla_decode = mlaRows?.Select(m => new
            {
                model = m.Model,
                kv_fraction = m.KvFraction,
                context = m.Context,
                kv_rank = m.KvRank,
                rope_dim = m.RopeDim,
                cache_bytes_per_token = m.CacheBytesPerToken,
                cache_bytes_read_per_token = m.CacheBytesReadPerToken,
                weight_bytes = m.WeightBytes,
                tokens_per_s = m.TokensPerSecond,
                speedup = m.Speedup,
            }).ToArray(),
            influence = influenceCost is null ? null : new
            {
                model = "demo (models/demo)",
                heads = "2.1",
                documents = influenceCost.Documents,
                tokens = influenceCost.Tokens,
                seconds = influenceCost.Seconds,
                documents_per_s = influenceCost.DocumentsPerSecond,
                tokens_per_s = influenceCost.TokensPerSecond,
                prefill_tokens_per_s = influenceCost.PrefillTokensPerSecond,
                ratio = influenceCost.Ratio,
                forward_positions = influenceCost.Positions,
                ratio_at_prefill_flop_rate = influenceCost.AtPrefillFlopRate,
                flop_rate_vs_prefill = influenceCost.FlopRateVsPrefill,
            },
            search = searchCost is null ? null : new
            {
                search = searchCost.Search,
                model = recipeModel,
                tokens = searchCost.Tokens,
                heads = searchCost.Heads,
                budget = searchCost.Budget,
                forward_ms = searchCost.ForwardSeconds * 1000,
                search_ms = searchCost.SearchSeconds * 1000,
                ratio = searchCost.Ratio,
                forwards = searchCost.Forwards,
                forward_equivalents = searchCost.ForwardEquivalents,
            },
        };
        if (json)
        {
            stdout.WriteLine(Json.Serialize(result));
            return 0;
        }
        stdout.WriteLine($"headwise bench — {threads} thread(s), {gemm.Isa}{(quick ? ", QUICK (small sizes: not the targets' figures)" : "")}");
        stdout.WriteLine();
        var gemmRows = new CliTable("", ">1 thread", $">{threads} threads", "")
            .Row($"GEMM {gemm.N}³", $"{gemm.OursSingleThread:F1} GFLOP/s", $"{gemm.OursMultiThread:F1} GFLOP/s", "")
            .Row($"scalar twin ({gemm.NaiveN}³)", $"{gemm.NaiveSingleThread:F2} GFLOP/s", "", $"→ ours is {gemm.OursSingleThread / gemm.NaiveSingleThread:F0}× the naive loop");
        if (gemm.OpenBlasSingleThread is double o1 && gemm.OpenBlasMultiThread is double om)
        {
            gemmRows.Row("OpenBLAS", $"{o1:F1} GFLOP/s", $"{om:F1} GFLOP/s", "")
                .Row("ours / OpenBLAS", $"{gemm.OursSingleThread / o1:F2}×", $"{gemm.OursMultiThread / om:F2}×", "(target 1.3× on one thread)");
        }
        else
        {
            gemmRows.Row("OpenBLAS", "", "", $"not measured: {gemm.OpenBlasStatus}");
        }
        gemmRows.Row("memory bandwidth", $"{bandwidth.SingleThreadGBps:F1} GB/s", $"{bandwidth.MultiThreadGBps:F1} GB/s", "").Write(stdout);
        stdout.WriteLine();
        stdout.WriteLine($"prefill {prefill.Tokens} tokens     {prefill.TokensPerSecond,8:F0} tokens/s  {prefill.GFlops,6:F1} GFLOP/s = {prefill.GFlops / gemm.OursMultiThread:P0} of our GEMM rate (target ≥ 80%, #10)");
        stdout.WriteLine($"prepacked weights      {prepack.Speedup:F2}× the prefill packing on every call ({prepack.UnpackedSeconds * 1000:F0} → {prepack.PackedSeconds * 1000:F0} ms); resident {prepack.WeightBytes / 1e6:F0} MB weights + {prepack.PackedBytes / 1e6:F0} MB packed = {prepack.ResidentRatio:F2}× the weights");
        stdout.WriteLine(DecodeLine(decode));
        if (gated is not null)
        {
            stdout.WriteLine($"gated MLP prefill      {gated.Tokens} tokens on a Llama shape: SiLU·up in the GEMM's store {gated.Speedup:F3}× the separate pass " +
                $"({gated.SplitSeconds * 1000:F0} → {gated.FusedSeconds * 1000:F0} ms); logits {(gated.Bitwise ? "bitwise equal" : "NOT bitwise equal")}");
        }
        stdout.WriteLine($"hooks                  plain {hooks.PlainSeconds * 1000:F0} ms; one no-op hook {hooks.NoOpRatio:F3}×; full activation cache {hooks.FullCacheRatio:F2}× (new arrays), {hooks.ReusedCacheRatio:F2}× (refilled; target ≤ 1.25×)");
        if (load is not null)
        {
            stdout.WriteLine($"load {load.CheckpointBytes / 1e6:F0} MB checkpoint  {load.LoadSeconds * 1000:F0} ms to ready (target < 1 s), first forward {load.FirstForwardSeconds * 1000:F0} ms; " +
                $"resident memory +{load.RssGrowthBytes / 1e6:F0} MB = {load.RssRatio:F2}× the weights (target ≤ 1.1×){(load.AllMapped ? ", memory-mapped" : "")}");
        }
        if (train is not null)
        {
            stdout.WriteLine($"training               {train.Shape}, batch {train.Batch}×{train.SeqLen}: {train.TokensPerSecond:F0} tokens/s; backward = {train.BackwardToForward:F2}× forward (CPU time {train.BackwardToForwardCpu:F2}×; target ≤ 2.5×)");
        }
        if (prims is not null)
        {
            stdout.WriteLine("primitives             our kernels against System.Numerics.Tensors' TensorPrimitives");
            Write(stdout, BenchText.Table(["operation", ">n", ">ours ns", ">TensorPrimitives ns", ">library/ours", "library bits align-independent"],
                prims.Select(p => new[] { p.Operation, $"{p.Length:N0}", $"{p.OursNs:F0}", $"{p.LibraryNs:F0}", $"{p.LibraryOverOurs:F2}",
                    p.LibrarySameBitsAtEveryAlignment is bool same ? (same ? "yes" : "NO") : "" })));
        }
        if (scan is not null)
        {
            stdout.WriteLine($"importance scan        {scan.Shape}, {scan.Tokens} tokens, {scan.Heads} heads: {scan.ScanSeconds:F1} s = {scan.Ratio:F2}× heads·forward (target ≤ 0.6)");
        }
        if (recipeCosts is not null)
        {
            stdout.WriteLine($"recipes                {recipeModel}, {recipeTokens} tokens; median of per-round ratios to a plain forward (targets: empty 1.0×, soften ≤ 1.1×)");
            Write(stdout, BenchText.Table(["recipe", ">plain ms", ">recipe ms", ">ratio"],
                recipeCosts.Select(r => new[] { r.Recipe, $"{r.PlainMs:F2}", $"{r.RecipeMs:F2}", $"{r.Ratio:F3}×" })));
        }
        if (searchCost is { } sc)
        {
            stdout.WriteLine($"search                 {recipeModel}, {sc.Tokens} tokens, {sc.Heads} heads, {sc.Search}: {sc.SearchSeconds * 1000:F0} ms = {sc.Ratio:F1}× one forward ({sc.ForwardSeconds * 1000:F2} ms); " +
                $"{sc.Forwards} forwards = {sc.ForwardEquivalents:F1} forward-equivalents by the search's count");
        }
        if (ort is not null)
        {
            stdout.WriteLine($"onnx runtime           {ort.OrtVersion}, same weights: mean NLL {ort.Nll:F4}, |ΔNLL| ≤ {ort.MaxNllDiff:0.0E+0}, max |Δlogit| {ort.MaxLogitDiff:0.0E+0}; Headwise ÷ ORT tokens/s (target ≥ 1.2× at 1,024 tokens on 2 threads)");
            Write(stdout, BenchText.Table([">tokens", ">threads", ">Headwise tok/s", ">ORT tok/s", ">ratio", ">Headwise % of peak", ">ORT % of peak", ">ceiling"],
                ort.Timings.Select(t => new[] { $"{t.Tokens}", $"{t.Threads}", $"{t.HeadwiseTokensPerSecond:F0}", $"{t.OrtTokensPerSecond:F0}", $"{t.Ratio:F2}×",
                    $"{t.HeadwiseOfPeak:P0}", $"{t.OrtOfPeak:P0}", $"{t.CeilingRatio:F2}×" })));
            stdout.WriteLine(PeakNote);
        }
        if (torchRuns is not null)
        {
            stdout.WriteLine($"pytorch eager          torch {torchRuns.TorchVersion} on {torchRuns.Blas} BLAS, same weights (dev/bench/torch_prefill.py: dev/reference's HF GPT-2 forward): mean NLL {torchRuns.Nll:F4}, |ΔNLL| ≤ {torchRuns.MaxNllDiff:0.0E+0}; Headwise ÷ PyTorch tokens/s (target ≥ 5×)");
            if (torchRuns.Blas is "reference" or "unknown")
            {
                stdout.WriteLine("                       (PyTorch without an optimised BLAS is tens of times slower than it can be: install libopenblas0-pthread, dev/reference/install.sh; these ratios flatter us)");
            }
            Write(stdout, BenchText.Table([">tokens", ">threads", ">Headwise tok/s", ">PyTorch tok/s", ">ratio", ">Headwise % of peak", ">PyTorch % of peak", ">ceiling"],
                torchRuns.Timings.Select(t => new[] { $"{t.Tokens}", $"{t.Threads}", $"{t.HeadwiseTokensPerSecond:F0}", $"{t.TorchTokensPerSecond:F1}", $"{t.Ratio:F2}×",
                    $"{t.HeadwiseOfPeak:P0}", $"{t.TorchOfPeak:P0}", $"{t.CeilingRatio:F2}×" })));
            stdout.WriteLine(PeakNote);
        }
        else if (torchSkipped is not null)
        {
            stdout.WriteLine($"pytorch eager          not measured: {torchSkipped}");
        }
        if (variantSpeeds is not null)
        {
            stdout.WriteLine($"variants               training steps on the demo shape{(quick ? " (--quick: sequence 32, batch 2)" : "")}, tokens/s and the ratio to softmax:");
            Write(stdout, BenchText.Table(["variant", ">tokens/s", ">ratio"],
                variantSpeeds.Select(v => v.Skipped is null ? new[] { v.Variant, $"{v.TokensPerSecond:F0}", $"{v.Ratio:F2}×" } : [v.Variant, $"skipped: {v.Skipped}", ""])));
        }
        if (attention is not null)
        {
            stdout.WriteLine("attention kernels      causal prefill, attention alone: fused (three passes per row) vs blocked (tiles, online softmax)");
            Write(stdout, BenchText.Table(["shape", ">tokens", ">threads", ">fused GFLOP/s", ">blocked GFLOP/s", ">blocked ÷ fused"],
                attention.Select(a => new[] { a.Shape, $"{a.Tokens}", $"{a.Threads}", $"{a.FusedGFlops:F1}", $"{a.BlockedGFlops:F1}", $"{a.Speedup:F2}×" })));
        }
        Write(stdout, gemmShapes is null ? [] : GemmShapesBenchmark.Describe(gemmShapes));
        Write(stdout, gemvLayouts is null ? [] : GemvLayoutBenchmark.Describe(gemvLayouts));
        Write(stdout, longContext is null ? [] : LongContextBenchmark.Describe(longContext));
        foreach (string line in vitSpeeds is null ? [] : VitBenchmark.Describe(vitSpeeds))
        {
            stdout.WriteLine(line);
        }
        if (mlaRows is not null)
        {
            stdout.WriteLine($"mla decode             a random GQA Llama against its MLA conversions{(quick ? " (--quick: 2 layers, d_model 256)" : "")}, the cache pre-filled:");
            Write(stdout, BenchText.Table([">context", "model", ">cache B/token", ">MB read/token", ">tokens/s", ">speed-up"],
                mlaRows.Select(m => new[] { $"{m.Context}", m.Model, $"{m.CacheBytesPerToken:N0}", $"{m.CacheBytesReadPerToken / 1e6:F1}", $"{m.TokensPerSecond:F1}", $"{m.Speedup:F2}×" })));
        }
        if (influenceCost is { } ic)
        {
            stdout.WriteLine($"influence              demo (models/demo), head 2.1, {ic.Documents} documents of {ic.Tokens:N0} tokens: {ic.DocumentsPerSecond:F1} documents/s, " +
                $"{ic.TokensPerSecond:N0} tokens/s = {ic.Ratio:F2} of prefill ({ic.PrefillTokensPerSecond:N0} tokens/s); " +
                $"{ic.Positions:N0} forward positions (eval's half-overlapping windows), clean and masked: at prefill's FLOP rate the ratio " +
                $"would be {ic.AtPrefillFlopRate:F2}; the scorer's FLOP rate is {ic.FlopRateVsPrefill:F2}× prefill's (batched windows)");
        }
        return 0;
    }

    /// <summary>Prints a benchmark's description: its lines as they are, its tables through <see cref="CliTable"/>.</summary>
    // under the ORT and PyTorch tables: what the peak columns mean
    private const string PeakNote = "                       (% of peak: the forward's matmuls and causal attention (FLOPs) per second ÷ the FMA peak of that many threads, " +
        "measured in this run; ceiling: the ratio a forward at that peak would reach — no engine can beat it on this machine)";

    internal static void Write(TextWriter stdout, params IEnumerable<BenchText> items)
    {
        foreach (var item in items)
        {
            if (item.Columns is { } columns)
            {
                var table = new CliTable([.. columns]);
                foreach (string[] cells in item.Rows ?? [])
                {
                    table.Row(cells);
                }
                table.Write(stdout);
            }
            else
            {
                stdout.WriteLine(item.Line);
            }
        }
    }

    // decode vs the bandwidth bound, a bandwidth probe before every decode round (ModelBenchmarks.DecodeAgainstBandwidth)
    private static DecodeBoundResult DecodeRounds(Headwise.Models.TransformerModel model, bool quick, int threads, CancellationToken cancel) =>
        ModelBenchmarks.DecodeAgainstBandwidth(model, quick ? 3 : 7, quick ? 8 : 32, quick ? 64 : 256, threads, 16, cancel);

    private static object DecodeJson(DecodeBoundResult d) => new
    {
        tokens = d.TokensPerRound,
        rounds = d.Rounds,
        tokens_per_s = d.TokensPerSecond,
        weight_bytes = d.WeightBytes,
        gbps_mt = d.GBps,
        bound_tokens_per_s = d.BoundTokensPerSecond,
        ratio_vs_bound = d.MedianRatio,
        ratio_min = d.MinRatio,
        ratio_max = d.MaxRatio,
    };

    private static string DecodeLine(DecodeBoundResult d) =>
        $"decode                 {d.TokensPerSecond,8:F1} tokens/s  bound {d.BoundTokensPerSecond:F1} tokens/s ({d.WeightBytes / 1e6:F0} MB of weights per token at {d.GBps:F1} GB/s) " +
        $"= {d.MedianRatio:P0} (median of {d.Rounds} rounds, each after its own bandwidth probe: {d.MinRatio:P0}–{d.MaxRatio:P0}; target ≥ 90%)";
}
