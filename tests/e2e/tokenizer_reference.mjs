// The reference side of crescent's tokenizer and chat-template tests and of
// `crescent bench tokenizer`: runs transformers.js' tokenizers (@lenml/tokenizers)
// and @huggingface/jinja from third_party/npm on the same inputs.
//
//   node tokenizer_reference.mjs encode <model dir> <corpus.jsonl> <out.jsonl>
//       one line per corpus line: {"ids", "ids_plain", "text", "text_skip"}
//   node tokenizer_reference.mjs bench <model dir> <text file> <min seconds>
//       prints {"mb_per_s": X (warm: repeated passes), "cold_mb_per_s": Y (first pass), "tokens": N}
//   node tokenizer_reference.mjs render <cases.json> <out.jsonl>
//       cases: [{"template", "context"}]; one line per case: {"ok", "text"|"error"}
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(path.join(root, "third_party", "npm", "package.json"));

function loadTokenizer(dir) {
  const { TokenizerLoader } = require("@lenml/tokenizers");
  return TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
  });
}

function decode(tok, ids, skip) {
  return ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: skip });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "encode") {
  const [dir, corpus, out] = args;
  const tok = loadTokenizer(dir);
  const lines = fs.readFileSync(corpus, "utf8").split("\n").filter((l) => l.length > 0);
  const res = [];
  for (const l of lines) {
    const text = JSON.parse(l);
    const ids = tok.encode(text, { add_special_tokens: true });
    const plain = tok.encode(text, { add_special_tokens: false });
    res.push(JSON.stringify({ ids, ids_plain: plain, text: decode(tok, plain, false), text_skip: decode(tok, ids, true) }));
  }
  fs.writeFileSync(out, res.join("\n") + "\n");
} else if (mode === "bench") {
  const [dir, file, secs] = args;
  const tok = loadTokenizer(dir);
  const text = fs.readFileSync(file, "utf8");
  const lines = text.split("\n");
  const bytes = Buffer.byteLength(text, "utf8");
  let n = 0, tokens = 0;
  const c0 = performance.now();
  for (const l of lines) tok.encode(l, { add_special_tokens: false });
  const cold = bytes / ((performance.now() - c0) / 1000) / 1e6;
  const t0 = performance.now();
  do {
    for (const l of lines) tokens += tok.encode(l, { add_special_tokens: false }).length;
    ++n;
  } while (performance.now() - t0 < Number(secs) * 1000);
  const dt = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ mb_per_s: (bytes * n) / dt / 1e6, cold_mb_per_s: cold, tokens: tokens / n }));
} else if (mode === "render") {
  const [cases, out] = args;
  const { Template } = require("@huggingface/jinja");
  const res = [];
  for (const c of JSON.parse(fs.readFileSync(cases, "utf8"))) {
    try {
      res.push(JSON.stringify({ ok: true, text: new Template(c.template).render(c.context) }));
    } catch (e) {
      res.push(JSON.stringify({ ok: false, error: String(e.message ?? e) }));
    }
  }
  fs.writeFileSync(out, res.join("\n") + "\n");
} else {
  console.error("usage: tokenizer_reference.mjs encode|bench|render ...");
  process.exit(2);
}
