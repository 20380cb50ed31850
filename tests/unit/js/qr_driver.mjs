// Test driver: reads a JSON array of texts on stdin, prints one JSON result per text:
// {version, size, mask, modules: [[0|1]]} or {error} when encodeQR throws.
// An optional JSON array of masks on argv[2] forces a mask per text (null = let encodeQR choose).
import { readFileSync } from "node:fs";
import { encodeQR } from "../../../ticketing/static/ticketing/qr.js";

const texts = JSON.parse(readFileSync(0, "utf8"));
const masks = JSON.parse(process.argv[2] ?? "[]");

function encodeOne(text, i) {
  try {
    const options = masks[i] == null ? {} : { mask: masks[i] };
    const { version, size, mask, modules } = encodeQR(text, options);
    return { version, size, mask, modules: modules.map((row) => row.map(Number)) };
  } catch (error) {
    return { error: `${error.name}: ${error.message}` };
  }
}

process.stdout.write(JSON.stringify(texts.map(encodeOne)));
