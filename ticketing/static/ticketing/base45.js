// Base45 (RFC 9285): the QR alphanumeric alphabet as a binary-to-text encoding. Unlike Base64,
// every output character is in the alphanumeric set, so a QR code can carry binary data at
// 5.5 bits per character instead of 8 bits per byte in byte mode.

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

function encodePair(high, low) {
  // Two bytes are a number below 65536 = 45^3 - 9289, written as three base-45 digits,
  // least significant first (RFC 9285 §4).
  const n = high * 256 + low;
  return ALPHABET[n % 45] + ALPHABET[Math.floor(n / 45) % 45] + ALPHABET[Math.floor(n / 2025)];
}

function encodeSingle(byte) {
  // A trailing odd byte takes two digits, again least significant first.
  return ALPHABET[byte % 45] + ALPHABET[Math.floor(byte / 45)];
}

/** Encode bytes (a Uint8Array or array of 0-255 integers) as a Base45 string. */
export function base45Encode(bytes) {
  let out = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) out += encodePair(bytes[i], bytes[i + 1]);
  if (bytes.length % 2) out += encodeSingle(bytes[bytes.length - 1]);
  return out;
}
