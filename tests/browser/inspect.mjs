// Drives the inspector page (web/dist) in Debian's headless chromium through playwright-core,
// served on loopback by a small static server started here.
//
// usage: node inspect.mjs <dist dir> <cases.json> <artifacts dir>
// Each case: { name, boot, blobs, expect: { stats, root, file: { path, content, mode, size,
// chunks } } } or { name, boot, blobs: [], error } for a file the page must refuse; `lazy: true`
// makes the page read the file range by range instead of at once. With
// { bench: true } the case only times opening and listing the root. Exits 1 on any mismatch.
import { createServer } from "node:http";
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join, extname, normalize } from "node:path";
import { chromium } from "playwright-core";

const [dist, casesFile, artifacts] = process.argv.slice(2);
if (!dist || !casesFile || !artifacts) {
  console.error("usage: node inspect.mjs <dist> <cases.json> <artifacts>");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const cases = JSON.parse(readFileSync(casesFile, "utf8"));

const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".wasm": "application/wasm" };
const server = createServer((req, res) => {
  const p = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const file = join(dist, p === "/" ? "index.html" : p);
  try {
    const body = readFileSync(file);
    res.writeHead(200, { "content-type": types[extname(file)] || "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const failures = [];
const fail = (c, msg) => failures.push(`${c.name}: ${msg}`);
const report = {};

async function open(page, c) {
  await page.goto(c.lazy ? `${url}?lazy` : url);
  if (c.blobs.length) await page.setInputFiles("#blob-input", c.blobs);
  const t0 = Date.now();
  await page.setInputFiles("#boot-input", c.boot);
  await page.waitForFunction(() => document.body.dataset.ready === "1" ||
    getComputedStyle(document.getElementById("error")).display !== "none", null, { timeout: 60000 });
  return Date.now() - t0;
}

async function expand(page, path) {
  const parts = path.split("/").filter(Boolean);
  for (let k = 1; k < parts.length; k++) {
    const dir = "/" + parts.slice(0, k).join("/");
    const span = page.locator(`#tree span[data-path="${dir}"]`);
    if (!(await span.evaluate((s) => s.classList.contains("open")))) {
      await span.click();
      await page.locator(`#tree span[data-path="${dir}/${parts[k]}"]`).waitFor();
    }
  }
  await page.locator(`#tree span[data-path="${path}"]`).click();
  await page.waitForFunction((p) => document.getElementById("details-path").textContent === p, path);
}

for (const c of cases) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    const ms = await open(page, c);
    const err = await page.locator("#error").evaluate((e) => (getComputedStyle(e).display !== "none" ? e.textContent : ""));
    if (c.bench) {
      if (err) fail(c, `error: ${err}`);
      const entries = await page.locator("#tree > ul > li").count();
      const t1 = Date.now();
      await page.waitForFunction(() => document.body.dataset.summary === "1", null, { timeout: 120000 });
      const summaryMs = Date.now() - t1 + ms;
      report[c.name] = { open_and_list_ms: ms, root_entries: entries, summary_ms: summaryMs };
      console.log(`bench ${c.name}: opened and listed the root (${entries} entries) in ${ms} ms; ` +
        `whole-image statistics and plots after ${summaryMs} ms`);
    } else if (c.error) {
      if (!err.includes(c.error)) fail(c, `expected an error containing ${JSON.stringify(c.error)}, got ${JSON.stringify(err)}`);
      const bodyText = await page.locator("body").innerText();
      if (bodyText.trim().length < 20) fail(c, "blank page");
    } else {
      if (err) fail(c, `unexpected error: ${err}`);
      // Summary figures equal `nydus-image stat --output-json`.
      await page.waitForFunction(() => document.body.dataset.summary === "1", null, { timeout: 60000 });
      const ds = await page.locator("#summary-table").evaluate((t) => ({ ...t.dataset }));
      for (const [k, v] of Object.entries(c.expect.stats)) {
        if (String(ds[k]) !== String(v)) fail(c, `summary ${k} = ${ds[k]}, stat says ${v}`);
      }
      await page.waitForFunction(() => document.getElementById("check-report").dataset.errors !== undefined);
      const checkErrors = await page.locator("#check-report").evaluate((e) => e.dataset.errors);
      if (checkErrors !== "0") fail(c, `check reports ${checkErrors} errors`);
      await page.waitForFunction(() => document.querySelectorAll("#size-plot rect").length > 0);
      // The tree's root listing.
      const names = await page.locator("#tree > ul > li > span").allTextContents();
      for (const n of c.expect.root) if (!names.includes(n)) fail(c, `root lacks ${n}: ${names}`);
      // A file's details, chunks and content.
      const f = c.expect.file;
      await expand(page, f.path);
      const d = await page.locator("#details-table").evaluate((t) => ({ ...t.dataset }));
      if (d.type !== "file" || Number(d.size) !== f.size || d.mode !== f.mode) fail(c, `details of ${f.path}: ${JSON.stringify(d)}`);
      await page.waitForFunction(() => document.getElementById("chunks-table").dataset.count !== undefined);
      const n = await page.locator("#chunks-table").evaluate((t) => Number(t.dataset.count));
      if (n !== f.chunks) fail(c, `${f.path} has ${n} chunks in the page, ${f.chunks} expected`);
      await page.click("#content-button");
      await page.waitForFunction(() => document.getElementById("content").dataset.verified === "1" ||
        getComputedStyle(document.getElementById("error")).display !== "none");
      const content = await page.locator("#content").textContent();
      if (content !== f.content) fail(c, `content of ${f.path} differs: ${JSON.stringify(content.slice(0, 80))}`);
      // Search finds the file.
      await page.fill("#search", f.path.split("/").pop());
      await page.waitForFunction(() => Number(document.getElementById("results").dataset.count) > 0);
    }
    for (const e of errors) fail(c, `page error: ${e}`);
  } catch (e) {
    fail(c, String(e));
  }
  await page.screenshot({ path: join(artifacts, `${c.name}.png`), fullPage: true });
  await page.close();
}
await browser.close();
server.close();
writeFileSync(join(artifacts, "report.json"), JSON.stringify({ report, failures }, null, 2));
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log(`browser: ${cases.length} cases passed`);
