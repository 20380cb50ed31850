// Test driver for tv2.js and base45.js, run with Node's WebCrypto (the browser's API):
//   qr <credential hex (125 bytes)> <step>   -> {public_key_b64, private_key_extractable, qr_text}
//   base45 <hex>...                          -> [Base45 of each input]
//   step <serverOffsetMs> <nowMs>            -> currentStep(...)
//   idb                                      -> getOrCreateDeviceKey against an in-memory IndexedDB
import { base45Encode } from "../../../ticketing/static/ticketing/base45.js";
import {
  compressPublicKey,
  currentStep,
  generateDeviceKey,
  getOrCreateDeviceKey,
  makeQRText,
} from "../../../ticketing/static/ticketing/tv2.js";

// ---- An in-memory IndexedDB -----------------------------------------------------------------
// Just enough of IndexedDB for tv2.js's key store: open with an upgrade, readonly get and
// readwrite add with out-of-line keys. Events fire asynchronously, as in a browser, and add()
// on an existing key fails the request and aborts the transaction (ConstraintError).

const later = (fn) => setTimeout(fn, 0);

class FakeRequest {
  settle(result, error = null) {
    later(() => {
      this.result = result;
      this.error = error;
      (error ? this.onerror : this.onsuccess)?.();
    });
  }
}

class FakeTransaction {
  constructor(store) {
    this.store = store;
    this.pending = 0;
    this.error = null;
  }

  objectStore() {
    const tx = this;
    return {
      get: (key) => tx.request(() => tx.store.get(key)),
      add: (value, key) => tx.request(() => {
        tx.store.adds = (tx.store.adds ?? 0) + 1;
        if (tx.store.has(key)) {
          throw Object.assign(new Error("key exists"), { name: "ConstraintError" });
        }
        tx.store.set(key, value);
      }),
    };
  }

  request(operation) {
    const request = new FakeRequest();
    this.pending++;
    later(() => {
      try {
        request.settle(operation());
      } catch (error) {
        this.error = error;
        request.settle(undefined, error);
      }
      later(() => this.finishOne());
    });
    return request;
  }

  finishOne() {
    this.pending--;
    if (this.pending > 0) return;
    if (this.error) {
      this.onerror?.();
      this.onabort?.();
    } else {
      this.oncomplete?.();
    }
  }
}

class FakeIndexedDB {
  constructor() {
    this.databases = new Map();
  }

  open(name) {
    const request = new FakeRequest();
    later(() => {
      const isNew = !this.databases.has(name);
      if (isNew) this.databases.set(name, new Map());
      const stores = this.databases.get(name);
      const db = {
        createObjectStore: (storeName) => stores.set(storeName, new Map()),
        transaction: (storeName) => new FakeTransaction(stores.get(storeName)),
        close: () => {},
      };
      request.result = db;
      if (isNew) request.onupgradeneeded?.();
      request.settle(db);
    });
    return request;
  }

  dump() {
    const out = {};
    for (const [dbName, stores] of this.databases) {
      for (const [storeName, store] of stores) {
        out[`${dbName}/${storeName}`] = { keys: [...store.keys()], add_calls: store.adds ?? 0 };
      }
    }
    return out;
  }
}

// ---- Commands ----------------------------------------------------------------------------

const hexBytes = (hex) => Uint8Array.from(Buffer.from(hex, "hex"));
const base64 = (bytes) => Buffer.from(bytes).toString("base64");

async function qr(credentialHex, step) {
  const keyPair = await generateDeviceKey(globalThis.crypto.subtle);
  return {
    public_key_b64: base64(await compressPublicKey(keyPair.publicKey)),
    private_key_extractable: keyPair.privateKey.extractable,
    qr_text: await makeQRText(hexBytes(credentialHex), Number(step), keyPair.privateKey),
  };
}

async function idb() {
  const indexedDB = new FakeIndexedDB();
  const publicKeyOf = async (pair) => base64(await compressPublicKey(pair.publicKey));
  // Two tabs racing on a fresh browser, then a later page load: all must see one key.
  const racing = await Promise.all([getOrCreateDeviceKey({ indexedDB }),
    getOrCreateDeviceKey({ indexedDB })]);
  const later = await getOrCreateDeviceKey({ indexedDB });
  return {
    public_keys: await Promise.all([...racing, later].map(publicKeyOf)),
    private_key_extractable: later.privateKey.extractable,
    stored: indexedDB.dump(),
  };
}

const commands = {
  qr,
  idb,
  base45: async (...hexes) => hexes.map((hex) => base45Encode(hexBytes(hex))),
  step: async (offsetMs, nowMs) => currentStep(Number(offsetMs), Number(nowMs)),
};

const [command, ...args] = process.argv.slice(2);
process.stdout.write(JSON.stringify(await commands[command](...args)));
