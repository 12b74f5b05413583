/* llmos trace viewer: draws the page data (#llmos-data) with DOM calls only. Every string
   from the run reaches the page through textContent, never as markup. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("llmos-data").textContent);
  var ORIGIN = { s: "sampled", f: "forced", i: "injected", h: "healed" };
  var CHUNK = 5000; // spans added per task; the first chunk shows at once
  var timing = { parsed: performance.now(), first: 0, done: 0 };
  window.llmosTiming = timing;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function seconds(s) {
    if (typeof s !== "number") return "";
    return s >= 1 ? s.toFixed(2) + " s" : (s * 1000).toFixed(1) + " ms";
  }
  function percent(p) {
    if (p > 0 && p < 1e-5) return "<0.001%";
    return (100 * p).toFixed(p >= 0.1 || p === 0 ? 1 : 3) + "%";
  }
  function fact(dl, key, value) {
    if (value === undefined || value === null || value === "") return;
    dl.appendChild(el("dt", null, key));
    dl.appendChild(el("dd", null, value));
  }
  function figure(box, value, label) {
    var f = el("div", "figure");
    f.appendChild(el("b", null, value));
    f.appendChild(el("span", null, label));
    box.appendChild(f);
  }
  function quoted(text) {
    return JSON.stringify(text);
  }

  // ---- one run ------------------------------------------------------------------------
  function renderMeta(box, run) {
    var m = run.meta, st = m.stats || {}, counts = m.counts || {};
    var dl = el("dl");
    fact(dl, "spec", m.spec);
    fact(dl, "task", m.task);
    fact(dl, "model", m.model);
    fact(dl, "engine", m.engine);
    if (m.backends) {
      var parts = [];
      Object.keys(m.backends).forEach(function (k) { parts.push(k + ": " + m.backends[k]); });
      fact(dl, "backends", parts.join(", ") || "none (no constrained state)");
    }
    if (m.stop_reason) fact(dl, "stop", m.stop_reason + ": " + m.message);
    else fact(dl, "stop", "the trace ends without the run's result");
    fact(dl, "final state", m.final_state);
    box.appendChild(dl);
    var figs = el("div", "figures");
    if (m.stats) {
      figure(figs, st.sampled, "tokens sampled");
      figure(figs, st.forced, "tokens forced or injected");
      figure(figs, st.forward_passes, "forward passes");
      figure(figs, st.actions, "actions");
      figure(figs, seconds(st.total_s), "wall time");
      figure(figs, seconds(st.first_token_s), "first token");
      figure(figs, st.tokens_per_s, "tokens/s");
    } else {
      figure(figs, seconds(m.wall_s), "traced time");
    }
    figure(figs, counts.sampled + " / " + counts.forced + " / " + counts.injected + " / " + counts.healed,
      "spans: sampled / forced / injected / healed");
    box.appendChild(figs);
    if (m.prompt) {
      var d = el("details", "prompt");
      d.appendChild(el("summary", null, "prompt (" + (st.prompt_tokens || 0) + " tokens)"));
      d.appendChild(el("pre", null, m.prompt));
      box.appendChild(d);
    }
    if (!m.details) {
      box.appendChild(el("p", "note", "This trace has no step details (probabilities, " +
        "alternatives, mask sizes, step times): runs record them with llmos-run --html or --details."));
    }
  }

  function renderCard(card) {
    var d = el("details", "card" + (card.ok === false ? " failed" : ""));
    var head = card.action + " \u00b7 " + card.status;
    if (typeof card.duration_s === "number") head += " \u00b7 " + seconds(card.duration_s);
    d.appendChild(el("summary", null, head));
    var body = el("div", "card-body");
    var dl = el("dl");
    fact(dl, "status", card.status);
    fact(dl, "exit status", card.exit_code);
    fact(dl, "signal", card.signal);
    fact(dl, "limit hit", card.limit_hit);
    if (card.truncated) fact(dl, "output", "truncated at its limit");
    fact(dl, "refused", card.refused);
    fact(dl, "duration", seconds(card.duration_s));
    fact(dl, "cpu", seconds(card.cpu_s));
    if (card.peak_memory_mb) fact(dl, "peak memory", card.peak_memory_mb.toFixed(1) + " MB");
    body.appendChild(dl);
    body.appendChild(el("div", "note", "input"));
    body.appendChild(el("pre", "input", card.input));
    [["stdout", card.stdout], ["stderr", card.stderr], ["rows", card.rows]].forEach(function (p) {
      if (p[1]) {
        body.appendChild(el("div", "note", p[0]));
        body.appendChild(el("pre", p[0], p[1]));
      }
    });
    if (card.layers && card.layers.length) {
      body.appendChild(el("div", "note", "sandbox layers"));
      var chips = el("div", "chips layers");
      card.layers.forEach(function (x) { chips.appendChild(el("span", "chip", x)); });
      body.appendChild(chips);
    }
    if (card.unenforced && card.unenforced.length) {
      body.appendChild(el("div", "note", "limits this machine could not enforce"));
      var warn = el("div", "chips");
      card.unenforced.forEach(function (x) { warn.appendChild(el("span", "chip warn", x)); });
      body.appendChild(warn);
    }
    if (card.limits && Object.keys(card.limits).length) {
      var lim = el("dl", "limits");
      Object.keys(card.limits).forEach(function (k) { fact(lim, k, card.limits[k]); });
      body.appendChild(el("div", "note", "limits"));
      body.appendChild(lim);
    }
    d.appendChild(body);
    return d;
  }

  function bandHead(band) {
    var head = el("div", "band-head");
    head.appendChild(el("span", "state", band[0]));
    head.appendChild(el("span", "kind", band[1]));
    if (band[2]) {
      head.appendChild(document.createTextNode(" \u2190 "));
      head.appendChild(el("span", "trigger", band[2]));
      if (band[3]) head.appendChild(document.createTextNode(" from " + band[3]));
    }
    return head;
  }

  function shadeClass(extra) {
    var d = extra && extra[1];
    if (!d) return "";
    return d[0] < 0.2 ? " q3" : d[0] < 0.5 ? " q2" : d[0] < 0.9 ? " q1" : "";
  }

  var current = null; // the run under the pointer's tooltip

  function renderRun(container, run, done) {
    container.textContent = "";
    current = run;
    var meta = el("section", "meta");
    renderMeta(meta, run);
    container.appendChild(meta);
    var text = el("div", "transcript");
    container.appendChild(text);
    var bands = run.bands, texts = run.texts, origins = run.origins, extras = run.extras;
    var healed = {};
    run.healed.forEach(function (i) { healed[i] = true; });
    var bodies = bands.map(function (band, b) {
      var sec = el("section", "band type-" + band[1]);
      sec.setAttribute("data-band", String(b));
      sec.setAttribute("data-state", band[0]);
      sec.appendChild(bandHead(band));
      if (band[5] >= 0) sec.appendChild(renderCard(run.cards[band[5]]));
      var body = el("div", "band-text");
      sec.appendChild(body);
      text.appendChild(sec);
      return body;
    });
    var n = texts.length, i = 0, b = 0;
    function chunk() {
      var end = Math.min(n, i + CHUNK);
      var frag = document.createDocumentFragment();
      for (; i < end; i++) {
        if (b + 1 < bands.length && bands[b + 1][4] <= i) {
          bodies[b].appendChild(frag);
          frag = document.createDocumentFragment();
          while (b + 1 < bands.length && bands[b + 1][4] <= i) b++;
        }
        var o = origins.charAt(i);
        var sp = document.createElement("span");
        sp.className = "t " + o + (healed[i] ? " hl" : "") + (o === "s" ? shadeClass(extras[i]) : "");
        sp.textContent = texts[i];
        sp.llmosIndex = i;
        frag.appendChild(sp);
      }
      if (bodies.length) bodies[b].appendChild(frag);
      if (!timing.first) timing.first = performance.now();
      if (i < n) setTimeout(chunk, 0);
      else if (done) done();
    }
    chunk();
  }

  // ---- the tooltip ----------------------------------------------------------------------
  var tip = document.getElementById("tip");
  function bandOf(run, i) {
    var lo = 0, hi = run.bands.length - 1;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (run.bands[mid][4] <= i) lo = mid; else hi = mid - 1;
    }
    return run.bands[lo];
  }
  function tipLine(text, cls) {
    tip.appendChild(el("div", cls, text));
  }
  function fillTip(run, i) {
    tip.textContent = "";
    var o = run.origins.charAt(i), x = run.extras[i], band = bandOf(run, i);
    tipLine(ORIGIN[o] + " \u00b7 state " + band[0], "h");
    if (o === "s") {
      tipLine("text " + quoted(run.texts[i]) + "  ids [" + x[0].join(", ") + "]");
      var d = x[1];
      if (!d) { tipLine("no step details recorded"); return; }
      tipLine("p = " + percent(d[0]) + "   time " + seconds(d[2]));
      var vocab = run.meta.vocab_size;
      tipLine(d[1] === null ? "no mask: every token allowed"
        : "mask: " + d[1] + (vocab ? " of " + vocab : "") + " tokens allowed");
      var table = el("table");
      d[3].forEach(function (alt) {
        var tr = el("tr", alt[0] === x[0][0] ? "chosen" : "");
        tr.appendChild(el("td", null, quoted(alt[1])));
        tr.appendChild(el("td", null, percent(alt[2])));
        table.appendChild(tr);
      });
      tip.appendChild(table);
    } else if (o === "f") {
      tipLine("text " + quoted(run.texts[i]));
      tipLine(x.length ? "ids [" + x.join(", ") + "] (forced by the grammar)"
        : "fed with the text after it (a trigger's rest, a delimiter, an open)");
    } else if (o === "i") {
      tipLine("action output: " + x + " tokens appended to the context");
    } else if (o === "h") {
      tipLine(quoted(x[0]) + " was ids [" + x[1].join(", ") + "]");
      tipLine("re-tokenized with the text after it as [" + x[2].join(", ") + "]");
      if (!x[3]) tipLine("(the healed token was the prompt's)");
    }
  }
  function onOver(ev) {
    var t = ev.target;
    if (!current || !t.classList || !t.classList.contains("t") || t.llmosIndex === undefined) return;
    fillTip(current, t.llmosIndex);
    tip.hidden = false;
    var r = t.getBoundingClientRect();
    var top = r.bottom + 6, left = Math.min(r.left, window.innerWidth - 430);
    if (top + tip.offsetHeight > window.innerHeight) top = Math.max(4, r.top - tip.offsetHeight - 6);
    tip.style.left = Math.max(4, left) + "px";
    tip.style.top = top + "px";
  }
  function onOut(ev) {
    if (ev.target.classList && ev.target.classList.contains("t")) tip.hidden = true;
  }

  // ---- the legend --------------------------------------------------------------------------
  function toggles() {
    document.querySelectorAll("input[data-toggle]").forEach(function (box) {
      box.addEventListener("change", function () {
        document.body.classList.toggle(box.getAttribute("data-toggle"), box.checked);
      });
    });
  }

  // ---- an evaluation -------------------------------------------------------------------------
  function renderEval(root, ev, panel, panelBody) {
    ev.sections.forEach(function (sec, s) {
      var box = el("section", "evaluation");
      box.appendChild(el("h2", null, sec.label + ": " + sec.solved + " of " + sec.total + " solved (" + percent(sec.accuracy) + ")"));
      var figs = el("div", "figures");
      Object.keys(sec.pass_at_k).forEach(function (k) { figure(figs, percent(sec.pass_at_k[k]), "pass@" + k); });
      figure(figs, seconds(sec.wall_s), "wall time");
      figure(figs, sec.samples, "samples per task");
      box.appendChild(figs);
      var filters = el("div", "filters");
      var table = el("table", "tasks");
      table.setAttribute("data-section", String(s));
      var head = el("tr");
      ["#", "task", "outcome", "answer", "expected", "actions", "tokens"].forEach(function (h) { head.appendChild(el("th", null, h)); });
      var thead = el("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = el("tbody");
      sec.rows.forEach(function (r, i) {
        var tr = el("tr");
        tr.setAttribute("data-outcome", r.outcome);
        tr.setAttribute("data-row", String(i));
        tr.tabIndex = 0;
        tr.appendChild(el("td", null, String(i + 1)));
        tr.appendChild(el("td", "text", r.task));
        var oc = el("td");
        oc.appendChild(el("span", "outcome" + (r.outcome === "solved" ? " solved" : ""), r.outcome));
        tr.appendChild(oc);
        tr.appendChild(el("td", "text answer", r.answer));
        tr.appendChild(el("td", "text expected", r.expected));
        tr.appendChild(el("td", null, r.actions));
        tr.appendChild(el("td", null, r.tokens));
        function open() {
          var trace = r.trace === null ? null : ev.traces[r.trace];
          tbody.querySelectorAll("tr.open").forEach(function (x) { x.classList.remove("open"); });
          tr.classList.add("open");
          panel.hidden = false;
          panel.querySelector("h2").textContent = "task " + (i + 1) + " (" + sec.label + "): " + r.outcome;
          if (trace) {
            document.body.removeAttribute("data-ready");
            renderRun(panelBody, trace, function () { document.body.setAttribute("data-ready", "trace"); });
          } else {
            panelBody.textContent = "";
            panelBody.appendChild(el("p", "note", r.detail || "no trace was recorded for this task"));
            document.body.setAttribute("data-ready", "trace");
          }
          panel.scrollIntoView({ block: "start" });
        }
        tr.addEventListener("click", open);
        tr.addEventListener("keydown", function (e) { if (e.key === "Enter") open(); });
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      function filterBy(outcome, button) {
        filters.querySelectorAll("button").forEach(function (x) { x.classList.remove("on"); });
        button.classList.add("on");
        tbody.querySelectorAll("tr").forEach(function (tr) {
          tr.hidden = outcome !== "" && tr.getAttribute("data-outcome") !== outcome;
        });
      }
      var all = el("button", "on", "all " + sec.total);
      all.setAttribute("data-outcome", "");
      all.addEventListener("click", function () { filterBy("", all); });
      filters.appendChild(all);
      Object.keys(sec.outcomes).forEach(function (name) {
        var b = el("button", null, name + " " + sec.outcomes[name]);
        b.setAttribute("data-outcome", name);
        b.addEventListener("click", function () { filterBy(name, b); });
        filters.appendChild(b);
      });
      box.appendChild(filters);
      box.appendChild(table);
      root.appendChild(box);
    });
  }

  // ---- the page ----------------------------------------------------------------------------
  var main = document.getElementById("main");
  main.addEventListener("mouseover", onOver);
  main.addEventListener("mouseout", onOut);
  toggles();
  if (DATA.kind === "eval") {
    var panel = document.getElementById("panel");
    renderEval(document.getElementById("eval"), DATA, panel, document.getElementById("run"));
    timing.first = timing.done = performance.now();
    document.body.setAttribute("data-ready", "eval");
  } else {
    renderRun(document.getElementById("run"), DATA.run, function () {
      timing.done = performance.now();
      document.body.setAttribute("data-ready", "run");
    });
  }
})();
