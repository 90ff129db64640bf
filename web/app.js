// The page: picks or receives files, asks the worker (the core in WASM) and renders answers.
const worker = new Worker("worker.js", { type: "module" });
const pending = new Map();
let nextId = 1;
worker.onmessage = (ev) => {
  const { id, ok, result, error } = ev.data;
  const p = pending.get(id);
  pending.delete(id);
  if (ok) p.resolve(result); else p.reject(new Error(error));
};
worker.onerror = (ev) => showError(`The decoder stopped: ${ev.message || "unknown error"}`);
function call(op, args) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args });
  });
}

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const k of kids) e.append(k);
  return e;
};
const fmt = (n) => Number(n).toLocaleString("en-US");
const bytes = (n) => n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`;

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.style.display = "block";
}
function clearError() { $("error").style.display = "none"; }
function status(msg) { $("status").textContent = msg; }

function row(table, k, v) {
  table.append(el("tr", {}, el("th", { textContent: k }), el("td", {}, v instanceof Node ? v : String(v))));
}

async function openFiles(boot, blobs) {
  clearError();
  delete document.body.dataset.ready;
  delete document.body.dataset.summary;
  for (const id of ["summary", "browser", "details"]) $(id).hidden = true;
  status(`Opening ${boot.name}…`);
  const t0 = performance.now();
  let opened;
  try {
    // `?lazy` in the address reads even small bootstraps range by range (as large ones are).
    const lazy = new URLSearchParams(location.search).has("lazy");
    opened = await call("open", { file: boot, blobs, lazy });
  } catch (e) {
    status("");
    showError(`${boot.name} could not be opened: ${e.message}`);
    return;
  }
  const { version, missing } = opened;
  await renderTree();
  status(`Opened ${boot.name} (RAFS v${version}) and listed its root in ${(performance.now() - t0).toFixed(0)} ms` +
    (missing.length ? `; give blob(s) ${missing.join(", ")} to read file contents` : ""));
  document.body.dataset.ready = "1";
  // Statistics walk the whole image: computed after the tree is usable.
  try {
    renderSummary(await call("summary"));
  } catch (e) {
    showError(e.message);
  }
}

function renderSummary(s) {
  const t = $("summary-table");
  t.replaceChildren();
  const st = s.stats;
  row(t, "RAFS version", s.fs_version);
  row(t, "Flags", s.flags);
  row(t, "Chunk size", bytes(s.chunk_size));
  row(t, "Compressor / digester", `${s.compressor} / ${s.digester}`);
  row(t, "Inodes", fmt(st.inodes));
  row(t, "Files", fmt(st.files));
  row(t, "Directories", fmt(st.directories));
  row(t, "Symlinks", fmt(st.symlinks));
  row(t, "Special files", fmt(st.special_files));
  row(t, "Extra hard links", fmt(st.hardlinks));
  row(t, "File bytes", fmt(st.file_bytes));
  row(t, "Chunk references", fmt(st.chunk_references));
  row(t, "Unique chunks", fmt(st.unique_chunks));
  row(t, "Dedup ratio", st.dedup_ratio.toFixed(3));
  row(t, "Prefetch table", s.prefetch.length ? s.prefetch.join(", ") : "(none)");
  for (const [k, v] of Object.entries({ files: st.files, directories: st.directories, unique_chunks: st.unique_chunks, file_bytes: st.file_bytes, inodes: st.inodes })) {
    t.dataset[k] = v;
  }
  const bt = $("blob-table");
  bt.replaceChildren(el("tr", {}, ...["#", "blob id", "chunks", "compressed", "serves", "saved by dedup", "unused chunks", "file given"].map((h) => el("th", { textContent: h }))));
  s.blobs.forEach((b, i) => {
    const u = st.blobs[i] || {};
    bt.append(el("tr", {}, ...[i, b.blob_id, fmt(b.chunk_count), bytes(b.compressed_size), bytes(u.referenced_bytes || 0), bytes(u.saved_bytes || 0), fmt(u.unused_chunks || 0), b.given ? "yes" : "no"]
      .map((v, k) => el("td", { textContent: String(v), className: k === 1 ? "mono" : "" }))));
  });
  plotDedup(st);
  document.body.dataset.summary = "1";
  call("dirSizes", { path: "/" }).then(plotSizes, (e) => showError(e.message));
  call("check").then(renderCheck, (e) => showError(e.message));
  $("summary").hidden = false;
}

function bars(svg, items, cls) {
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const max = Math.max(1, ...items.map((i) => i.value));
  const w = Number(svg.getAttribute("width")) - 170;
  items.forEach((it, k) => {
    const y = k * 20;
    const label = document.createElementNS(ns, "text");
    Object.entries({ x: 0, y: y + 13, "font-size": 12 }).forEach(([a, v]) => label.setAttribute(a, v));
    label.textContent = it.label.length > 18 ? it.label.slice(0, 17) + "…" : it.label;
    const r = document.createElementNS(ns, "rect");
    Object.entries({ x: 120, y: y + 3, height: 13, width: Math.max(1, (it.value / max) * w), class: it.cls || cls }).forEach(([a, v]) => r.setAttribute(a, v));
    const v = document.createElementNS(ns, "text");
    Object.entries({ x: 124 + Math.max(1, (it.value / max) * w), y: y + 13, "font-size": 11 }).forEach(([a, val]) => v.setAttribute(a, val));
    v.textContent = it.text;
    svg.append(label, r, v);
  });
  svg.setAttribute("height", Math.max(20, items.length * 20));
}

function plotSizes(list) {
  bars($("size-plot"), list.slice(0, 15).map((d) => ({ label: d.name, value: d.bytes, text: bytes(d.bytes) })), "bar");
}

function plotDedup(st) {
  const referenced = st.blobs.reduce((a, b) => a + b.referenced_bytes, 0);
  bars($("dedup-plot"), [
    { label: "file bytes", value: st.file_bytes, text: bytes(st.file_bytes), cls: "bar" },
    { label: "referenced", value: referenced, text: bytes(referenced), cls: "bar" },
    { label: "stored once", value: st.unique_bytes, text: bytes(st.unique_bytes), cls: "bar2" },
  ]);
}

function renderCheck(rep) {
  const c = $("check-report");
  c.replaceChildren();
  const errs = rep.findings.filter((f) => f.severity === "error").length;
  c.append(el("p", { className: errs ? "bad" : "ok", textContent: `${fmt(rep.inodes)} inodes, ${fmt(rep.chunks)} chunk references checked: ${errs} error(s), ${rep.findings.length - errs} warning(s)` }));
  c.dataset.errors = errs;
  const ul = el("ul");
  for (const f of rep.findings.slice(0, 200)) ul.append(el("li", { textContent: `${f.severity}: ${f.location}: ${f.message}` }));
  c.append(ul);
}

// The tree: directories list lazily when opened.
async function renderTree() {
  const tree = $("tree");
  tree.replaceChildren();
  const ul = el("ul");
  tree.append(ul);
  await fill(ul, "/");
  $("browser").hidden = false;
}

async function fill(ul, dir) {
  let entries;
  try {
    entries = await call("list", { path: dir });
  } catch (e) {
    showError(e.message);
    return;
  }
  for (const e of entries) {
    const path = dir === "/" ? `/${e.name}` : `${dir}/${e.name}`;
    const span = el("span", { textContent: e.name, className: `t-${e.type}` });
    span.dataset.path = path;
    const li = el("li", {}, span);
    span.onclick = async () => {
      document.querySelectorAll("#tree span.sel").forEach((s) => s.classList.remove("sel"));
      span.classList.add("sel");
      showDetails(path);
      if (e.type === "dir") {
        if (span.classList.toggle("open")) {
          const sub = el("ul");
          li.append(sub);
          await fill(sub, path);
        } else {
          li.querySelector("ul")?.remove();
        }
      }
    };
    ul.append(li);
  }
}

let shown = null;
async function showDetails(path) {
  shown = path;
  let st;
  try {
    st = await call("stat", { path });
  } catch (e) {
    showError(e.message);
    return;
  }
  $("details-path").textContent = path;
  const t = $("details-table");
  t.replaceChildren();
  t.dataset.type = st.type;
  t.dataset.size = st.size;
  t.dataset.mode = st.mode;
  row(t, "Type", st.type);
  row(t, "Mode", st.mode);
  row(t, "Owner", `${st.uid}:${st.gid}`);
  row(t, "Modified", `${new Date(st.mtime * 1000).toISOString()} (${st.mtime}.${String(st.mtime_nsec).padStart(9, "0")})`);
  row(t, "Size", `${fmt(st.size)} bytes`);
  row(t, "Links", st.nlink);
  row(t, "Inode", st.ino);
  if (st.target !== undefined) row(t, "Target", typeof st.target === "string" ? st.target : st.target.hex);
  if (st.rdev) row(t, "Device", st.rdev);
  for (const x of st.xattrs) row(t, `xattr ${x.name}`, typeof x.value === "string" ? x.value : `0x${x.value.hex}`);
  const ct = $("chunks-table");
  ct.replaceChildren();
  $("content").textContent = "";
  $("content-button").hidden = st.type !== "file" || st.size === 0;
  if (st.type === "file") {
    const cs = await call("chunks", { path });
    ct.dataset.count = cs.length;
    ct.append(el("tr", {}, ...["#", "file offset", "blob", "compressed at", "stored", "size", "digest"].map((h) => el("th", { textContent: h }))));
    for (const c of cs.slice(0, 500)) {
      ct.append(el("tr", {}, ...[c.index, fmt(c.file_offset), `${c.blob_index}${c.compressed ? ` (${c.compressor})` : ""}`, fmt(c.compressed_offset), fmt(c.compressed_size), fmt(c.uncompressed_size), c.digest]
        .map((v, k) => el("td", { textContent: String(v), className: k === 6 ? "mono" : "" }))));
    }
  }
  $("details").hidden = false;
}

$("content-button").onclick = async () => {
  const path = shown;
  const out = $("content");
  out.textContent = "Reading…";
  try {
    const data = await call("read", { path, max: 1 << 20 });
    const text = new TextDecoder("utf-8", { fatal: true });
    let shownText;
    try {
      shownText = text.decode(data);
    } catch {
      shownText = Array.from(data.slice(0, 4096), (b) => b.toString(16).padStart(2, "0")).join(" ");
    }
    out.textContent = shownText;
    out.dataset.length = data.length;
    out.dataset.verified = "1";
  } catch (e) {
    out.textContent = "";
    showError(e.message);
  }
};

let searchTimer = null;
$("search").oninput = () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $("search").value.trim();
    const res = $("results");
    res.replaceChildren();
    if (!q) return;
    const hits = await call("search", { query: q, limit: 200 });
    for (const h of hits) {
      const li = el("li", {}, el("span", { textContent: h.path, className: `mono t-${h.type}` }));
      li.onclick = () => showDetails(h.path);
      res.append(li);
    }
    res.dataset.count = hits.length;
  }, 200);
};

function start(files) {
  const list = Array.from(files);
  if (!list.length) return;
  // The largest file is taken as the bootstrap unless one is named like a bootstrap.
  const boot = list.find((f) => /boot/.test(f.name)) || list[0];
  openFiles(boot, list.filter((f) => f !== boot));
}
$("boot-input").onchange = () => openFiles($("boot-input").files[0], Array.from($("blob-input").files));
$("blob-input").onchange = () => { if ($("boot-input").files[0]) openFiles($("boot-input").files[0], Array.from($("blob-input").files)); };
const drop = $("drop");
document.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
document.addEventListener("dragleave", () => drop.classList.remove("over"));
document.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); start(e.dataTransfer.files); });
