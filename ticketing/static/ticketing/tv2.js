// The phone side of the TV2 dynamic QR credential (SPEC §6).
//
// The issuer-signed credential (125 bytes) is bound to a device key. Every 30 s the phone signs
// b"TV2" ‖ credential ‖ step with that key, offline, so a screenshot dies within two minutes and
// a copied credential is useless on another phone: the private key never leaves this browser.
// The IndexedDB part is kept apart from the pure functions so tests can hand in a key directly.

import { base45Encode } from "./base45.js";

export const CREDENTIAL_LENGTH = 125;
export const STEP_SECONDS = 30;
const SIGNATURE_LENGTH = 64;
const DOMAIN_TAG = new TextEncoder().encode("TV2");
const QR_PREFIX = "TV2:";

const DB_NAME = "cashless";
const STORE_NAME = "keys";
const DEVICE_KEY_ID = "device";
const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256" };
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" };

function defaultSubtle() {
  // undefined outside a secure context (plain http on a non-localhost host).
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error("WebCrypto is unavailable (needs HTTPS or localhost)");
  return subtle;
}

// ---- Device key ---------------------------------------------------------------------------

/**
 * Generate a device key pair. The private key is non-extractable: script on this page can sign
 * with it but can never read it out, which is what stops a ticket being copied to another phone.
 */
export function generateDeviceKey(subtle = defaultSubtle()) {
  return subtle.generateKey(ECDSA_P256, false, ["sign", "verify"]);
}

function requestDone(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function transactionDone(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

function openKeyStore(idb) {
  const request = idb.open(DB_NAME, 1);
  request.onupgradeneeded = () => request.result.createObjectStore(STORE_NAME);
  return requestDone(request);
}

function readKeyPair(db) {
  const tx = db.transaction(STORE_NAME, "readonly");
  return requestDone(tx.objectStore(STORE_NAME).get(DEVICE_KEY_ID));
}

async function addKeyPair(db, keyPair) {
  // add(), not put(): if another tab stored a key first, this fails instead of replacing the key
  // the server already knows, and the caller re-reads the winner.
  const tx = db.transaction(STORE_NAME, "readwrite");
  const done = transactionDone(tx);
  tx.objectStore(STORE_NAME).add(
    { privateKey: keyPair.privateKey, publicKey: keyPair.publicKey }, DEVICE_KEY_ID);
  await done;
}

/**
 * Return this browser's device key pair {privateKey, publicKey}, creating and storing it in
 * IndexedDB (database "cashless", store "keys") on first use. CryptoKey objects are stored as
 * they are (structured clone), so the private key stays non-extractable at rest too.
 */
export async function getOrCreateDeviceKey(
  { indexedDB = globalThis.indexedDB, subtle = defaultSubtle() } = {},
) {
  const db = await openKeyStore(indexedDB);
  try {
    const existing = await readKeyPair(db);
    if (existing) return existing;
    const keyPair = await generateDeviceKey(subtle);
    try {
      await addKeyPair(db, keyPair);
      return keyPair;
    } catch (error) {
      const winner = await readKeyPair(db);
      if (winner) return winner;
      throw error;
    }
  } finally {
    db.close();
  }
}

/**
 * The 33-byte compressed SEC1 form of a P-256 public key (0x02/0x03 ‖ X), the form the
 * credential carries. Public keys are always exportable, even from a non-extractable pair.
 */
export async function compressPublicKey(publicKey, subtle = defaultSubtle()) {
  const raw = new Uint8Array(await subtle.exportKey("raw", publicKey));
  if (raw.length !== 65 || raw[0] !== 0x04) throw new Error("expected an uncompressed P-256 key");
  const compressed = new Uint8Array(33);
  compressed[0] = 0x02 | (raw[64] & 1); // the parity of Y picks between the two square roots
  compressed.set(raw.subarray(1, 33), 1);
  return compressed;
}

// ---- Dynamic part -------------------------------------------------------------------------

/** The current 30-second step, from server-corrected time (the phone's clock may be off). */
export function currentStep(serverOffsetMs = 0, nowMs = Date.now()) {
  return Math.floor((nowMs + serverOffsetMs) / 1000 / STEP_SECONDS);
}

function stepBytes(step) {
  if (!Number.isInteger(step) || step < 0 || step > 0xffffffff) {
    throw new RangeError(`step ${step} is not a u32`);
  }
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, step, false); // big-endian, as every TV2 integer
  return bytes;
}

function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Build the QR text "TV2:" + Base45(credential ‖ step ‖ device signature), 193 bytes before
 * Base45. The signature covers b"TV2" ‖ credential ‖ step; the "TV2" prefix keeps a device
 * signature from being replayed as a signature over anything else the key might sign.
 * WebCrypto's ECDSA output is already raw r‖s (64 bytes), the form the contract fixes.
 */
export async function makeQRText(credentialBytes, step, privateKey, subtle = defaultSubtle()) {
  const credential = Uint8Array.from(credentialBytes);
  if (credential.length !== CREDENTIAL_LENGTH) {
    throw new RangeError(`credential must be ${CREDENTIAL_LENGTH} bytes, got ${credential.length}`);
  }
  const stepBE = stepBytes(step);
  const message = concatBytes(DOMAIN_TAG, credential, stepBE);
  const signature = new Uint8Array(await subtle.sign(ECDSA_SHA256, privateKey, message));
  if (signature.length !== SIGNATURE_LENGTH) throw new Error("unexpected ECDSA signature length");
  return QR_PREFIX + base45Encode(concatBytes(credential, stepBE, signature));
}
