// Runs the built Worker (build/index.js) in workerd through Miniflare: the runtime and Durable
// Object storage `wrangler dev` uses, without wrangler's development proxy in front (which
// answers 503 "Your worker restarted mid-request" when one of its own connections drops under
// a burst). The e2e tests and the bench start it; people use `wrangler dev` / `make demo-cf`.
//
//   node local.mjs options.json
//
// options.json: { "port": 8787, "vars": { "GEMINI_API_KEYS": "...", ... },
//                 "durableObjects": true, "persist": "/path/to/state",
//                 "script": "/another/worker.js" (the bench's floor; default: build/index.js),
//                 "inspectorPort": 9229 (V8's inspector, to profile the Worker's CPU; default: off) }
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";

const options = JSON.parse(await readFile(process.argv[2], "utf8"));
const here = fileURLToPath(new URL(".", import.meta.url));
const worker = new Miniflare({
  modules: true,
  scriptPath: options.script ?? `${here}build/index.js`,
  modulesRoot: options.script ? dirname(options.script) : here,
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
  compatibilityDate: "2025-09-01",
  bindings: options.vars,
  durableObjects: options.durableObjects ? { POOL_STATE: { className: "StateObject", useSQLite: true } } : {},
  durableObjectsPersist: options.persist ?? false,
  host: "127.0.0.1",
  port: options.port,
  inspectorPort: options.inspectorPort,
});
const url = await worker.ready;
console.log(`ready on ${url}`);
const stop = async () => {
  await worker.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
