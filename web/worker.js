// Decodes images off the main thread: the page stays responsive whatever the image size.
// Files are read lazily (File.slice + FileReaderSync): only the byte ranges the core asks for.
import init, { Inspector } from "./pkg/nydus_host_wasm.js";

const ready = init();
let image = null;

function reader(file) {
  const fr = new FileReaderSync();
  return (offset, len) => new Uint8Array(fr.readAsArrayBuffer(file.slice(offset, offset + len)));
}

// A blob file is named by its id (upstream's -D directory layout); a suffix is ignored.
const blobId = (name) => name.split(".")[0];

// Bootstraps up to this size are read into memory at once (metadata only; one read instead
// of one per structure); larger files (blobs with an inline bootstrap) are read lazily.
const IN_MEMORY = 256 << 20;
const INLINE_ID = "x".repeat(64);

const ops = {
  open({ file, blobs, lazy }) {
    if (image) image.free();
    image = null;
    const img = file.size <= IN_MEMORY && !lazy
      ? Inspector.open(file.name, new Uint8Array(new FileReaderSync().readAsArrayBuffer(file)))
      : Inspector.open_lazy(file.name, file.size, reader(file));
    // A blob with an inline bootstrap names itself "x" x 64 in its blob table.
    img.add_blob(INLINE_ID, file.size, reader(file));
    for (const b of blobs) img.add_blob(blobId(b.name), b.size, reader(b));
    image = img;
    return { version: img.version(), missing: JSON.parse(img.missing_blobs()) };
  },
  summary: () => JSON.parse(image.summary()),
  list: ({ path }) => JSON.parse(image.list(path)),
  stat: ({ path }) => JSON.parse(image.stat(path)),
  chunks: ({ path }) => JSON.parse(image.chunks(path)),
  check: () => JSON.parse(image.check()),
  search: ({ query, limit }) => JSON.parse(image.search(query, limit)),
  dirSizes: ({ path }) => JSON.parse(image.dir_sizes(path)),
  read: ({ path, max }) => image.read_file(path, max),
};

self.onmessage = async (ev) => {
  const { id, op, args } = ev.data;
  try {
    await ready;
    if (op !== "open" && !image) throw new Error("no image is open");
    const t0 = performance.now();
    const result = ops[op](args || {});
    self.postMessage({ id, ok: true, result, ms: performance.now() - t0 });
  } catch (e) {
    self.postMessage({ id, ok: false, error: e && e.message ? e.message : String(e) });
  }
};
