// A small QR code encoder (ISO/IEC 18004) for the commuter's ticket page.
//
// It does only what the TV2 credential needs: alphanumeric mode, error-correction level M and
// versions 1-10. "TV2:" + Base45 uses only the 45-character alphanumeric alphabet, and that mode
// packs two characters into 11 bits (5.5 bits each, against 8 in byte mode), so the 193-byte
// payload (292 characters) still fits version 10, which a gate camera reads from a phone screen.
// Written by hand on purpose: the pages load no third-party code (SPEC §10).

const ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
const MODE_ALPHANUMERIC = 0b0010;
const MAX_VERSION = 10;
const LEVEL_M_FORMAT_BITS = 0b00; // the two EC-level bits of the format word for level M
const PAD_BYTES = [0xec, 0x11];
const QUIET_ZONE = 4;

// Level M block structure per version (ISO 18004 table 9): EC codewords per block, block count.
const EC_PER_BLOCK_M = [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26];
const BLOCKS_M = [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5];

// Centre coordinates of alignment patterns (ISO 18004 annex E); version 1 has none.
const ALIGNMENT_CENTRES = [
  [], [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34],
  [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50],
];

// ---- Bit buffer and data encoding ---------------------------------------------------------

function appendBits(bits, value, length) {
  for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1);
}

function charCountBits(version) {
  // The length field grows from 9 to 11 bits at version 10 (ISO 18004 table 3).
  return version <= 9 ? 9 : 11;
}

function alphanumericBitLength(text, version) {
  const pairs = Math.floor(text.length / 2);
  return 4 + charCountBits(version) + 11 * pairs + 6 * (text.length % 2);
}

function encodeAlphanumeric(text, version) {
  const bits = [];
  appendBits(bits, MODE_ALPHANUMERIC, 4);
  appendBits(bits, text.length, charCountBits(version));
  for (let i = 0; i + 1 < text.length; i += 2) {
    appendBits(bits, ALPHANUMERIC.indexOf(text[i]) * 45 + ALPHANUMERIC.indexOf(text[i + 1]), 11);
  }
  if (text.length % 2) appendBits(bits, ALPHANUMERIC.indexOf(text[text.length - 1]), 6);
  return bits;
}

function assertAlphanumeric(text) {
  for (const ch of text) {
    if (!ALPHANUMERIC.includes(ch)) {
      throw new RangeError(`character ${JSON.stringify(ch)} is not in the QR alphanumeric set`);
    }
  }
}

// ---- Capacity and version choice ----------------------------------------------------------

function sizeOf(version) {
  return 17 + 4 * version;
}

function rawDataModules(version) {
  // Every module that is not a function pattern, format or version info (a closed form of the
  // ISO 18004 table 1 counts), so the tables above need no "total codewords" column.
  let modules = (16 * version + 128) * version + 64;
  if (version >= 2) {
    const align = Math.floor(version / 7) + 2;
    modules -= (25 * align - 10) * align - 55;
    if (version >= 7) modules -= 36;
  }
  return modules;
}

function totalCodewords(version) {
  return Math.floor(rawDataModules(version) / 8);
}

function dataCodewords(version) {
  return totalCodewords(version) - EC_PER_BLOCK_M[version] * BLOCKS_M[version];
}

function smallestVersion(text) {
  for (let version = 1; version <= MAX_VERSION; version++) {
    if (alphanumericBitLength(text, version) <= dataCodewords(version) * 8) return version;
  }
  throw new RangeError(
    `text of ${text.length} characters needs a QR version above ${MAX_VERSION} at level M`,
  );
}

function dataCodewordBytes(text, version) {
  const capacityBits = dataCodewords(version) * 8;
  const bits = encodeAlphanumeric(text, version);
  appendBits(bits, 0, Math.min(4, capacityBits - bits.length)); // terminator
  appendBits(bits, 0, (8 - (bits.length % 8)) % 8);
  const bytes = [];
  for (let i = 0; i < bits.length; i += 8) {
    bytes.push(bits.slice(i, i + 8).reduce((acc, bit) => (acc << 1) | bit, 0));
  }
  for (let i = 0; bytes.length < capacityBits / 8; i++) bytes.push(PAD_BYTES[i % 2]);
  return bytes;
}

// ---- Reed-Solomon over GF(256), primitive polynomial x^8+x^4+x^3+x^2+1 ----------------------

const GF_EXP = new Uint8Array(512);
const GF_LOG = new Uint8Array(256);
(function buildGaloisTables() {
  let x = 1;
  for (let i = 0; i < 255; i++) {
    GF_EXP[i] = x;
    GF_LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  // Doubling the table lets gfMultiply skip a modulo.
  for (let i = 255; i < 512; i++) GF_EXP[i] = GF_EXP[i - 255];
})();

function gfMultiply(a, b) {
  return a === 0 || b === 0 ? 0 : GF_EXP[GF_LOG[a] + GF_LOG[b]];
}

function rsGenerator(degree) {
  // (x - a^0)(x - a^1)...(x - a^(degree-1)), highest coefficient first.
  let poly = [1];
  for (let i = 0; i < degree; i++) {
    const next = new Array(poly.length + 1).fill(0);
    for (let j = 0; j < poly.length; j++) {
      next[j] ^= poly[j];
      next[j + 1] ^= gfMultiply(poly[j], GF_EXP[i]);
    }
    poly = next;
  }
  return poly;
}

function rsRemainder(data, generator) {
  const remainder = new Array(generator.length - 1).fill(0);
  for (const byte of data) {
    const factor = byte ^ remainder.shift();
    remainder.push(0);
    for (let i = 0; i < remainder.length; i++) {
      remainder[i] ^= gfMultiply(generator[i + 1], factor);
    }
  }
  return remainder;
}

function interleaveWithErrorCorrection(data, version) {
  // Split into blocks (the short ones first), add EC per block, then interleave column by column
  // so a smudge on the screen damages a few codewords in many blocks, not one block wholly.
  const blockCount = BLOCKS_M[version];
  const generator = rsGenerator(EC_PER_BLOCK_M[version]);
  const shortLength = Math.floor(data.length / blockCount);
  const longBlocks = data.length % blockCount;
  const blocks = [];
  let offset = 0;
  for (let b = 0; b < blockCount; b++) {
    const length = shortLength + (b >= blockCount - longBlocks ? 1 : 0);
    const block = data.slice(offset, offset + length);
    offset += length;
    blocks.push({ data: block, ec: rsRemainder(block, generator) });
  }
  const result = [];
  for (let i = 0; i <= shortLength; i++) {
    for (const block of blocks) if (i < block.data.length) result.push(block.data[i]);
  }
  for (let i = 0; i < generator.length - 1; i++) {
    for (const block of blocks) result.push(block.ec[i]);
  }
  return result;
}

// ---- Matrix: function patterns ------------------------------------------------------------

function emptyMatrix(size) {
  return Array.from({ length: size }, () => new Array(size).fill(false));
}

function setFunction(grid, x, y, dark) {
  grid.modules[y][x] = dark;
  grid.reserved[y][x] = true;
}

function drawFinder(grid, cx, cy) {
  // 7x7 finder plus its one-module light separator, clipped at the symbol's edge.
  for (let dy = -4; dy <= 4; dy++) {
    for (let dx = -4; dx <= 4; dx++) {
      const x = cx + dx;
      const y = cy + dy;
      if (x < 0 || y < 0 || x >= grid.size || y >= grid.size) continue;
      const ring = Math.max(Math.abs(dx), Math.abs(dy));
      setFunction(grid, x, y, ring !== 2 && ring !== 4);
    }
  }
}

function drawAlignment(grid, cx, cy) {
  for (let dy = -2; dy <= 2; dy++) {
    for (let dx = -2; dx <= 2; dx++) {
      setFunction(grid, cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
    }
  }
}

function drawFunctionPatterns(grid, version) {
  const last = grid.size - 1;
  for (let i = 0; i < grid.size; i++) {
    setFunction(grid, 6, i, i % 2 === 0);
    setFunction(grid, i, 6, i % 2 === 0);
  }
  drawFinder(grid, 3, 3);
  drawFinder(grid, last - 3, 3);
  drawFinder(grid, 3, last - 3);
  const centres = ALIGNMENT_CENTRES[version];
  for (const cy of centres) {
    for (const cx of centres) {
      // Skip the three corners where an alignment pattern would sit on a finder.
      const onFinder = (cx === 6 && cy === 6) || (cx === 6 && cy === centres.at(-1))
        || (cy === 6 && cx === centres.at(-1));
      if (!onFinder) drawAlignment(grid, cx, cy);
    }
  }
  drawFormatBits(grid, 0); // reserve the area now; the real mask is written later
  if (version >= 7) drawVersionBits(grid, version);
}

function bchRemainder(value, dataBits, generator, generatorDegree) {
  let rem = value << generatorDegree;
  for (let bit = dataBits + generatorDegree - 1; bit >= generatorDegree; bit--) {
    if ((rem >>> bit) & 1) rem ^= generator << (bit - generatorDegree);
  }
  return rem;
}

function formatWord(mask) {
  const data = (LEVEL_M_FORMAT_BITS << 3) | mask;
  // The XOR mask keeps the format word from being all zeros (ISO 18004 §7.9.1).
  return ((data << 10) | bchRemainder(data, 5, 0x537, 10)) ^ 0x5412;
}

function drawFormatBits(grid, mask) {
  const word = formatWord(mask);
  const bit = (i) => ((word >>> i) & 1) === 1;
  const last = grid.size - 1;
  // Copy 1 wraps around the top-left finder.
  for (let i = 0; i <= 5; i++) setFunction(grid, 8, i, bit(i));
  setFunction(grid, 8, 7, bit(6));
  setFunction(grid, 8, 8, bit(7));
  setFunction(grid, 7, 8, bit(8));
  for (let i = 9; i < 15; i++) setFunction(grid, 14 - i, 8, bit(i));
  // Copy 2 is split between the top-right and bottom-left finders.
  for (let i = 0; i < 8; i++) setFunction(grid, last - i, 8, bit(i));
  for (let i = 8; i < 15; i++) setFunction(grid, 8, grid.size - 15 + i, bit(i));
  setFunction(grid, 8, grid.size - 8, true); // the "dark module", always dark
}

function drawVersionBits(grid, version) {
  const word = (version << 12) | bchRemainder(version, 6, 0x1f25, 12);
  for (let i = 0; i < 18; i++) {
    const dark = ((word >>> i) & 1) === 1;
    const a = grid.size - 11 + (i % 3);
    const b = Math.floor(i / 3);
    setFunction(grid, a, b, dark); // top-right block
    setFunction(grid, b, a, dark); // bottom-left block
  }
}

// ---- Matrix: data and masking -------------------------------------------------------------

function placeCodewords(grid, codewords) {
  // Two-module-wide columns, right to left, snaking up then down; column 6 is the timing
  // pattern, so the column pair to its left shifts by one.
  let bitIndex = 0;
  const totalBits = codewords.length * 8;
  for (let right = grid.size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    const upward = ((right + 1) & 2) === 0;
    for (let step = 0; step < grid.size; step++) {
      const y = upward ? grid.size - 1 - step : step;
      for (let x = right; x >= right - 1; x--) {
        if (grid.reserved[y][x]) continue;
        // Remainder bits past the last codeword stay light.
        if (bitIndex < totalBits) {
          grid.modules[y][x] = ((codewords[bitIndex >>> 3] >>> (7 - (bitIndex & 7))) & 1) === 1;
          bitIndex++;
        }
      }
    }
  }
}

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(y / 2) + Math.floor(x / 3)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

function applyMask(grid, mask) {
  const masked = grid.modules.map((row) => row.slice());
  for (let y = 0; y < grid.size; y++) {
    for (let x = 0; x < grid.size; x++) {
      if (!grid.reserved[y][x] && MASKS[mask](x, y)) masked[y][x] = !masked[y][x];
    }
  }
  return masked;
}

// ---- Mask penalty (ISO 18004 §7.8.3) ------------------------------------------------------

function runPenalty(line) {
  let penalty = 0;
  let run = 1;
  for (let i = 1; i <= line.length; i++) {
    if (i < line.length && line[i] === line[i - 1]) {
      run++;
      continue;
    }
    if (run >= 5) penalty += 3 + (run - 5);
    run = 1;
  }
  return penalty;
}

const FINDER_LIKE = [
  [true, false, true, true, true, false, true, false, false, false, false],
  [false, false, false, false, true, false, true, true, true, false, true],
];

function finderLikePenalty(line) {
  // 1:1:3:1:1 dark-light runs next to four light modules look like a finder to a reader.
  let penalty = 0;
  for (let i = 0; i + 11 <= line.length; i++) {
    for (const pattern of FINDER_LIKE) {
      if (pattern.every((dark, k) => line[i + k] === dark)) penalty += 40;
    }
  }
  return penalty;
}

function boxPenalty(m) {
  let penalty = 0;
  for (let y = 0; y + 1 < m.length; y++) {
    for (let x = 0; x + 1 < m.length; x++) {
      const c = m[y][x];
      if (m[y][x + 1] === c && m[y + 1][x] === c && m[y + 1][x + 1] === c) penalty += 3;
    }
  }
  return penalty;
}

function balancePenalty(m) {
  const total = m.length * m.length;
  const dark = m.reduce((sum, row) => sum + row.filter(Boolean).length, 0);
  return 10 * Math.floor(Math.abs((dark * 100) / total - 50) / 5);
}

function penaltyScore(m) {
  const columns = m.map((_, x) => m.map((row) => row[x]));
  let penalty = boxPenalty(m) + balancePenalty(m);
  for (const line of [...m, ...columns]) penalty += runPenalty(line) + finderLikePenalty(line);
  return penalty;
}

// ---- Public API ---------------------------------------------------------------------------

/**
 * Encode text (QR alphanumeric characters only) at level M in the smallest version 1-10.
 * `options.mask` (0-7) forces a mask, for tests; by default the lowest-penalty mask wins.
 * Throws RangeError for characters outside the set or text that needs version 11+.
 */
export function encodeQR(text, options = {}) {
  assertAlphanumeric(text);
  const version = smallestVersion(text);
  const size = sizeOf(version);
  const grid = { size, modules: emptyMatrix(size), reserved: emptyMatrix(size) };
  drawFunctionPatterns(grid, version);
  placeCodewords(grid, interleaveWithErrorCorrection(dataCodewordBytes(text, version), version));

  const candidates = options.mask === undefined ? [0, 1, 2, 3, 4, 5, 6, 7] : [options.mask];
  let best = null;
  for (const mask of candidates) {
    drawFormatBits(grid, mask);
    const modules = applyMask(grid, mask);
    const penalty = penaltyScore(modules);
    if (best === null || penalty < best.penalty) best = { mask, modules, penalty };
  }
  return { version, size, mask: best.mask, modules: best.modules };
}

/**
 * Paint the QR code for `text` on a canvas with a 4-module quiet zone. The backing store is a
 * whole number of device pixels per module and the CSS width fills the container, with
 * smoothing off, so module edges stay sharp on any screen (blurred edges slow gate scanners).
 */
export function drawQR(canvas, text, { scale, margin = QUIET_ZONE } = {}) {
  const qr = encodeQR(text);
  const modulesWide = qr.size + 2 * margin;
  const cssWidth = canvas.clientWidth || canvas.parentElement?.clientWidth || modulesWide * 8;
  const pixelRatio = globalThis.devicePixelRatio || 1;
  const pixelsPerModule = scale ?? Math.max(1, Math.floor((cssWidth * pixelRatio) / modulesWide));
  canvas.width = canvas.height = modulesWide * pixelsPerModule;
  canvas.style.width = "100%";
  canvas.style.height = "auto";
  canvas.style.imageRendering = "pixelated";

  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#000";
  for (let y = 0; y < qr.size; y++) {
    for (let x = 0; x < qr.size; x++) {
      if (!qr.modules[y][x]) continue;
      ctx.fillRect((x + margin) * pixelsPerModule, (y + margin) * pixelsPerModule,
        pixelsPerModule, pixelsPerModule);
    }
  }
  return qr;
}
