// The token view (after CircuitsVis's colored-tokens attention view): the prompt as text, one row per head. Hover a token:
// in "attends to" mode every row colours each token by the weight the hovered token (as query) gives it; in "attended by"
// mode, by the weight each token (as query) gives the hovered one. Shared by the HTML report and the notebook formatters
// (Headwise.Interactive), inlined into both: no network, no dependency.
//
// data: { tokens: [string], heads: [{ name: "3.6", rows: [[float]] }] }  rows[q][k], k ≤ q (causal) or all k (bidirectional)
function headwiseTokenView(root, data) {
  "use strict";
  const T = data.tokens.length;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const weight = (rows, q, k) => (rows[q] && k < rows[q].length ? rows[q][k] : 0);
  // a token as it reads in the text: a newline shows as ↵ (and the text goes on in the same row), a tab as →
  const shown = (s) => s.replace(/\n/g, "↵").replace(/\t/g, "→");

  root.replaceChildren();
  root.classList.add("hw-tokenview");
  const controls = el("div", "hw-tv-controls");
  const name = "hw-tv-mode-" + Math.random().toString(36).slice(2);
  const modes = [["to", "where the hovered token attends (it is the query)"], ["from", "what attends to the hovered token (it is the key)"]];
  let mode = "to";
  for (const [value, label] of modes) {
    const lab = el("label");
    const input = el("input");
    input.type = "radio";
    input.name = name;
    input.value = value;
    input.checked = value === mode;
    input.addEventListener("change", () => { mode = value; if (hovered >= 0) paint(hovered); });
    lab.append(input, " " + label);
    controls.append(lab);
  }
  const status = el("div", "hw-tv-status", "Hover a token.");
  root.append(controls);

  const rowsEls = [];
  for (const head of data.heads) {
    const row = el("div", "hw-tv-row");
    row.dataset.head = head.name;
    row.append(el("span", "hw-tv-head", head.name));
    const toks = [];
    for (let i = 0; i < T; i++) {
      const t = el("span", "hw-tv-tok", shown(data.tokens[i]));
      t.dataset.i = i;
      row.append(t);
      toks.push(t);
    }
    root.append(row);
    rowsEls.push({ head, toks });
  }
  root.append(status);

  let hovered = -1;
  function paint(i) {
    hovered = i;
    let best = null;
    for (const { head, toks } of rowsEls) {
      for (let j = 0; j < T; j++) {
        const w = mode === "to" ? weight(head.rows, i, j) : weight(head.rows, j, i);
        toks[j].style.background = "rgba(228, 0, 43, " + Math.max(0, Math.min(1, w)).toFixed(3) + ")";
        toks[j].style.color = w > 0.55 ? "#fff" : "";
        toks[j].classList.toggle("hw-tv-hover", j === i);
        toks[j].title = (mode === "to" ? i + " → " + j : j + " → " + i) + ": " + w;
        if (best === null || w > best.w) best = { w, j, name: head.name };
      }
    }
    const q = JSON.stringify(data.tokens[i]);
    status.textContent = best === null ? "token " + i + " " + q
      : "token " + i + " " + q + (mode === "to" ? " attends most to " : " is attended most by ") + best.j + " "
        + JSON.stringify(data.tokens[best.j]) + " (" + best.w.toPrecision(3) + ", head " + best.name + ")";
  }
  root.addEventListener("mouseover", (ev) => {
    const t = ev.target;
    if (t.classList && t.classList.contains("hw-tv-tok")) paint(+t.dataset.i);
  });
}
