// Instantiates the wasm32-unknown-unknown build of nydus-wasm-golden and runs its golden
// checks. Usage: node run.mjs path/to/nydus_wasm_golden.wasm
import { readFileSync } from "node:fs";

const path = process.argv[2];
if (!path) {
  console.error("usage: node run.mjs <nydus_wasm_golden.wasm>");
  process.exit(2);
}
const { instance } = await WebAssembly.instantiate(readFileSync(path), {});
const e = instance.exports;
const n = e.golden_run();
const msg = new TextDecoder().decode(new Uint8Array(e.memory.buffer, e.message_ptr(), e.message_len()));
if (n === 0) {
  console.error(`wasm golden checks FAILED: ${msg}`);
  process.exit(1);
}
console.log(`wasm: ${msg}`);
