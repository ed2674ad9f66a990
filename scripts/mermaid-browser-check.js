// Render Mermaid charts in a real browser and measure what it drew; for headless Chromium.
//
// A page loads node_modules/mermaid/dist/mermaid.min.js, then this file, then calls
// `checkCharts([{name, source, theme}, ...])`. Each chart is rendered into its own <div> (in
// order, down the page, so a screenshot shows them all); what the browser laid out is written as
// JSON into <pre id="result"> for `chromium --dump-dom` to return: every text's box on the page,
// the pairs of texts that overlap, each bar series' fill and its visible bars, and the error of
// a chart the library rejected.

/* global mermaid */
/* exported checkCharts */

function box(element) {
  const r = element.getBoundingClientRect();
  return { x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height };
}

function overlap(a, b) {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  return w > 0.5 && h > 0.5 ? w * h : 0;
}

function measure(svg) {
  const texts = [...svg.querySelectorAll("text")]
    .filter((t) => t.textContent.trim())
    .map((t) => ({
      text: t.textContent,
      group: t.closest("g[class]").getAttribute("class"),
      axis: t.closest("g.left-axis, g.bottom-axis, g.top-axis")?.getAttribute("class") ?? null,
      ...box(t),
    }));
  const overlaps = [];
  for (let i = 0; i < texts.length; i++) {
    for (let j = i + 1; j < texts.length; j++) {
      const area = overlap(texts[i], texts[j]);
      if (area) overlaps.push([texts[i].text, texts[j].text, Math.round(area)]);
    }
  }
  const series = [...svg.querySelectorAll("g.plot > g[class^='bar-plot'], g.plot > g[class^='line-plot']")].map(
    (g) => {
      const shapes = [...g.querySelectorAll("rect, path")];
      return {
        series: g.getAttribute("class"),
        fill: shapes.length ? getComputedStyle(shapes[0]).fill : null,
        stroke: shapes.length ? getComputedStyle(shapes[0]).stroke : null,
        visible: shapes.filter((s) => {
          const b = box(s);
          return b.width >= 1 && b.height >= 1;
        }).length,
      };
    },
  );
  const background = svg.querySelector("rect.background");
  return {
    svg: box(svg),
    background: background ? getComputedStyle(background).fill : null,
    texts,
    overlaps,
    series,
  };
}

async function checkCharts(charts) {
  const results = {};
  let n = 0;
  for (const { name, source, theme } of charts) {
    mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: theme || "default" });
    const div = document.createElement("div");
    div.className = "chart";
    div.id = `chart-${name}`;
    document.body.appendChild(div);
    try {
      const { svg } = await mermaid.render(`svg-${++n}`, source);
      div.innerHTML = svg;
      results[name] = { ok: true, ...measure(div.querySelector("svg")) };
    } catch (error) {
      results[name] = { ok: false, error: String(error.message || error) };
    }
  }
  document.getElementById("result").textContent = JSON.stringify(results);
}
