#!/usr/bin/env node
// Check Mermaid diagrams with the real `mermaid` library: parse, then render to SVG in jsdom.
//
// Usage: node scripts/mermaid-check.mjs [--json] [FILE|-]...
//
// Each input is either Mermaid source or markdown whose ```mermaid blocks are checked (a file
// ending in .md, or any text with a ```mermaid fence). No FILE, or "-", reads stdin.
// Exit 0 when every diagram parses and renders, 1 when one is rejected (the parser's message is
// printed on stderr), 2 on a usage or setup error. --json prints one summary per diagram on
// stdout: its type, title, bars and lines (xychart), axis labels and titles, or the error.

import { readFileSync } from "node:fs";

const USAGE = "usage: node scripts/mermaid-check.mjs [--json] [FILE|-]...";

function fail(message, code = 2) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(code);
}

async function loadMermaid() {
  let JSDOM;
  try {
    ({ JSDOM } = await import("jsdom"));
  } catch {
    fail("the npm packages are not installed: run `npm ci` (or `make test`) in the repository");
  }
  // Mermaid renders into a DOM: give it jsdom's window as the browser's globals, before import.
  const dom = new JSDOM("<!doctype html><html><body></body></html>", { pretendToBeVisual: true });
  globalThis.window = dom.window;
  for (const key of Object.getOwnPropertyNames(dom.window)) {
    if (!(key in globalThis)) {
      try {
        globalThis[key] = dom.window[key];
      } catch {
        // a read-only global of Node's own: keep it
      }
    }
  }
  let mermaid;
  try {
    ({ default: mermaid } = await import("mermaid"));
  } catch (error) {
    fail(`cannot load the mermaid package (${error.message}): run \`npm ci\` (or \`make test\`)`);
  }
  mermaid.initialize({ startOnLoad: false, securityLevel: "strict", logLevel: "fatal" });
  return { mermaid, window: dom.window };
}

/** The diagrams of one input: [{line, source}], or {line, error} when there is none to check. */
function diagrams(name, text) {
  const lines = text.split(/\r?\n/);
  const fence = /^\s*```mermaid\s*$/;
  const markdown = /\.(md|markdown)$/i.test(name) || lines.some((l) => fence.test(l));
  if (!markdown) {
    return [{ line: 1, source: text }];
  }
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    if (!fence.test(lines[i])) continue;
    const end = lines.findIndex((l, j) => j > i && /^\s*```\s*$/.test(l));
    if (end < 0) return { line: i + 1, error: "the ```mermaid block is not closed" };
    found.push({ line: i + 1, source: lines.slice(i + 1, end).join("\n") });
    i = end;
  }
  return found.length ? found : { line: null, error: "no ```mermaid block in the markdown" };
}

const texts = (svg, selector) => [...svg.querySelectorAll(selector)].map((e) => e.textContent);

/** What the rendered SVG shows; throws when its geometry is not numbers. */
function summarize(svg) {
  for (const element of svg.querySelectorAll("*")) {
    for (const attr of element.attributes) {
      if (/\bNaN\b|Infinity/.test(attr.value) && attr.name !== "style") {
        throw new Error(`the rendered SVG has <${element.tagName} ${attr.name}="${attr.value}">`);
      }
    }
  }
  const bars = [...svg.querySelectorAll("g.plot g[class^='bar-plot'] rect")].map((r) => ({
    series: r.parentNode.getAttribute("class"),
    fill: r.getAttribute("fill"),
    x: Number(r.getAttribute("x")),
    y: Number(r.getAttribute("y")),
    width: Number(r.getAttribute("width")),
    height: Number(r.getAttribute("height")),
  }));
  const lines = [...svg.querySelectorAll("g.plot g[class^='line-plot'] path")].map((p) => ({
    series: p.parentNode.getAttribute("class"),
    stroke: p.getAttribute("stroke"),
    d: p.getAttribute("d"),
  }));
  const axis = (side, part) => texts(svg, `g.${side}-axis g.${part} text`);
  return {
    title: texts(svg, "g.chart-title text").join(" ") || null,
    bars,
    lines,
    // A vertical chart has its categories at the bottom and values on the left; a horizontal
    // one has categories on the left and values at the top.
    labels: { left: axis("left", "label"), bottom: axis("bottom", "label"), top: axis("top", "label") },
    axisTitles: { left: axis("left", "title"), bottom: axis("bottom", "title"), top: axis("top", "title") },
    svgBytes: svg.outerHTML.length,
  };
}

async function main(argv) {
  const json = argv.includes("--json");
  const args = argv.filter((a) => a !== "--json");
  if (args.some((a) => a === "-h" || a === "--help")) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (args.some((a) => a.startsWith("--"))) fail(`unknown option; ${USAGE}`);
  const inputs = (args.length ? args : ["-"]).map((path) => {
    const name = path === "-" ? "<stdin>" : path;
    try {
      return { name, text: readFileSync(path === "-" ? 0 : path, "utf8") };
    } catch (error) {
      return fail(`${name}: cannot read (${error.code || error.message})`);
    }
  });

  const { mermaid, window } = await loadMermaid();
  const results = [];
  let n = 0;
  for (const { name, text } of inputs) {
    const found = diagrams(name, text);
    if (!Array.isArray(found)) {
      results.push({ source: name, ok: false, ...found });
      continue;
    }
    for (const { line, source } of found) {
      const result = { source: name, line, ok: false };
      results.push(result);
      try {
        result.type = (await mermaid.parse(source)).diagramType;
      } catch (error) {
        result.error = `parse error: ${error.message || error}`;
        continue;
      }
      try {
        const { svg } = await mermaid.render(`mermaid-check-${++n}`, source);
        const doc = new window.DOMParser().parseFromString(svg, "image/svg+xml");
        Object.assign(result, summarize(doc.documentElement));
        result.ok = true;
      } catch (error) {
        result.error = `render error: ${error.message || error}`;
      }
    }
  }
  for (const r of results) {
    const where = r.line === null ? r.source : `${r.source}:${r.line}`;
    if (!r.ok) {
      process.stderr.write(`error: ${where}: ${r.error}\n`);
    } else if (!json) {
      const bars = r.bars.length ? `, ${r.bars.length} bar(s)` : "";
      process.stdout.write(`ok ${where}: ${r.type}${bars}\n`);
    }
  }
  if (json) process.stdout.write(`${JSON.stringify(results, null, 1)}\n`);
  return results.every((r) => r.ok) ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
