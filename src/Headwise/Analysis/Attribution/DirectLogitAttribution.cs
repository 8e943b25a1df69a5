using Headwise.Hooks;
using Headwise.Loading;
using Headwise.Models;

namespace Headwise.Analysis.Attribution;

/// <summary>One term of the residual stream and its direct effect on the logit (difference).</summary>
/// <param name="Name">"embed", "pos_embed", a head "L.H", "L.attn_bias" (the output projection's bias), or "L.mlp".</param>
/// <param name="Head">The head, for head terms.</param>
public sealed record LogitContribution(string Name, HeadId? Head, double Value);

/// <summary>Direct logit attribution at one position: each term's contribution, and the identity they satisfy.</summary>
/// <param name="Position">The position attributed (0-based).</param>
/// <param name="Answer">The answer token id; <paramref name="Wrong"/> the contrasting id, or null for the plain logit.</param>
/// <param name="Logit">The model's logit[answer] − logit[wrong] (or logit[answer]) at that position.</param>
/// <param name="NormBiasTerm">The final norm's bias · (W_U[answer] − W_U[wrong]): the part of <paramref name="Logit"/> no term owns (0 for RMSNorm).</param>
/// <param name="Contributions">Every term, in forward order; they sum to <paramref name="Logit"/> − <paramref name="NormBiasTerm"/>.</param>
/// <param name="Heads">The head contributions alone, [layer][head].</param>
public sealed record DirectLogitAttributionResult(
    int[] TokenIds, int Position, int Answer, int? Wrong, double Logit, double NormBiasTerm,
    IReadOnlyList<LogitContribution> Contributions, HeadScores Heads)
{
    public double Sum => Contributions.Sum(c => c.Value);
}

/// <summary>
/// Direct logit attribution (as in "Characterizing Mechanisms for Factual Recall" and "Does Circuit Analysis Interpretability
/// Scale? Evidence from Multiple Choice Capabilities in Chinchilla"). The final residual stream is a sum of terms —
/// the embeddings, each head's <c>hook_result</c>, each layer's output bias, each MLP's <c>hook_mlp_out</c> — and the final
/// norm is linear once its scale s = <c>ln_final.hook_scale</c> at the position is frozen. With d = W_U[answer] − W_U[wrong]:
/// <code>
///   LayerNorm: logit diff = Σ_terms ((v − mean(v)) / s) · (w ⊙ d)  +  b · d
///   RMSNorm:   logit diff = Σ_terms (v / s) · (w ⊙ d)
/// </code>
/// where w, b are the final norm's weight and bias (read by the family's tensor names). Each term's contribution is its
/// summand; the output-projection bias of a layer is hook_attn_out − Σ_h hook_result (exactly b_O).
/// </summary>
public static class DirectLogitAttribution
{
    public static DirectLogitAttributionResult Run(TransformerModel model, int[] tokens, int answer, int? wrong = null, int? position = null,
        CancellationToken cancel = default, Action<HookSet>? baseHooks = null)
    {
        var cfg = model.Config;
        cfg.RequireUniformHeads("direct logit attribution");
        int T = tokens.Length, C = cfg.DModel, V = cfg.VocabSize, L = cfg.NLayers, H = cfg.NHeads;
        if (T == 0)
        {
            throw new InvalidInputException("tokens: at least one token id is needed");
        }
        if ((uint)answer >= (uint)V)
        {
            throw new InvalidInputException($"answer: token id {answer} is outside the vocabulary [0, {V})");
        }
        if (wrong is { } wr && (uint)wr >= (uint)V)
        {
            throw new InvalidInputException($"wrong: token id {wr} is outside the vocabulary [0, {V})");
        }
        int pos = position ?? T - 1;
        if ((uint)pos >= (uint)T)
        {
            throw new InvalidInputException($"position {pos} is outside the prompt's positions 0..{T - 1}");
        }
        cancel.ThrowIfCancellationRequested();

        var (logits, cache) = model.RunWithCache(ModelInput.Single(tokens), name =>
            name is "hook_embed" or "hook_pos_embed" or "ln_final.hook_scale"
            || name.EndsWith("attn.hook_result", StringComparison.Ordinal)
            || name.EndsWith("hook_attn_out", StringComparison.Ordinal)
            || name.EndsWith("hook_mlp_out", StringComparison.Ordinal), baseHooks: baseHooks);

        var un = FinalReadout.Of(model);
        ReadOnlySpan<float> wU = un.WU.Span, normW = un.Norm.Weight, normB = un.Norm.Bias;
        // direction = w ⊙ (W_U[answer] − W_U[wrong]) / s
        var d = new double[C];
        double s = cache["ln_final.hook_scale"].Data[pos];
        double biasTerm = 0;
        for (int c = 0; c < C; c++)
        {
            double diff = wU[answer * C + c] - (wrong is { } w ? wU[w * C + c] : 0);
            d[c] = normW[c] * diff / s;
            if (!normB.IsEmpty)
            {
                biasTerm += normB[c] * diff;
            }
        }
        double Dot(ReadOnlySpan<float> v)
        {
            double mean = 0;
            if (un.Centres)
            {
                foreach (var x in v)
                {
                    mean += x;
                }
                mean /= v.Length;
            }
            double acc = 0;
            for (int c = 0; c < v.Length; c++)
            {
                acc += (v[c] - mean) * d[c];
            }
            return acc;
        }

        var terms = new List<LogitContribution>
        {
            new("embed", null, Dot(cache["hook_embed"].Data.AsSpan(pos * C, C))),
        };
        if (cache.Contains("hook_pos_embed"))
        {
            terms.Add(new("pos_embed", null, Dot(cache["hook_pos_embed"].Data.AsSpan(pos * C, C))));
        }
        var heads = new float[L][];
        var bias = new float[C];
        for (int l = 0; l < L; l++)
        {
            var result = cache[$"blocks.{l}.attn.hook_result"].Data;  // [1, pos, head, d_model]
            var attnOut = cache[$"blocks.{l}.hook_attn_out"].Data;    // [1, pos, d_model]
            heads[l] = new float[H];
            attnOut.AsSpan(pos * C, C).CopyTo(bias);
            for (int h = 0; h < H; h++)
            {
                var r = result.AsSpan((pos * H + h) * C, C);
                double value = Dot(r);
                heads[l][h] = (float)value;
                terms.Add(new($"{l}.{h}", new HeadId(l, h), value));
                for (int c = 0; c < C; c++)
                {
                    bias[c] -= r[c];
                }
            }
            if (cfg.OutputBias)
            {
                terms.Add(new($"{l}.attn_bias", null, Dot(bias)));
            }
            terms.Add(new($"{l}.mlp", null, Dot(cache[$"blocks.{l}.hook_mlp_out"].Data.AsSpan(pos * C, C))));
        }

        double logit = logits[(long)pos * V + answer] - (wrong is { } wl ? logits[(long)pos * V + wl] : 0);
        string what = wrong is null ? $"direct contribution to logit[{answer}]" : $"direct contribution to logit[{answer}] − logit[{wrong}]";
        var headScores = new HeadScores("direct logit attribution", $"{what} at position {pos}: (result / ln_final scale) · (norm weight ⊙ unembedding direction)", heads);
        return new DirectLogitAttributionResult(tokens, pos, answer, wrong, logit, biasTerm, terms, headScores);
    }
}

/// <summary>
/// What the final norm and unembedding do to the last residual stream, from the model's canonical accessors: the unembedding
/// W_U (vocab, d_model) and the final norm, which centres (LayerNorm) or not (RMSNorm).
/// </summary>
public sealed record FinalReadout(Weight WU, NormWeights Norm)
{
    public bool Centres => Norm.Kind == NormKind.LayerNorm;

    public static FinalReadout Of(TransformerModel model) => new(model.Unembedding.W, model.FinalNormWeights);
}
