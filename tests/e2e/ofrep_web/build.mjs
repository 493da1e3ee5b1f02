// Bundles entry.js for the browser: `node build.mjs OUTFILE`.
import { build } from "esbuild";

const outfile = process.argv[2];
if (!outfile) {
  console.error("usage: node build.mjs OUTFILE");
  process.exit(2);
}
await build({
  entryPoints: [new URL("./entry.js", import.meta.url).pathname],
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2020",
  outfile,
  logLevel: "warning",
});
