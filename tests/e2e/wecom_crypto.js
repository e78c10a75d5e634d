// WeCom's official crypto library (@wecom/crypto) as a test peer for tests/test_wecom.py, tests/test_mp.py
// and benchmarks: the callbacks the tests send are sealed here, and the replies the bot sends are opened
// here, so the bot's crypto is checked against an independent implementation.
//
//   node wecom_crypto.js      one JSON request a line on stdin → one JSON answer a line on stdout
//
// A request is an object or an array of objects (answered by an array, in order):
//   {"op": "seal", "key", "token", "timestamp", "nonce", "message", "id"} → {"encrypt", "signature"}
//   {"op": "encrypt", "key", "message", "id"}                            → {"encrypt"}
//   {"op": "sign", "token", "timestamp", "nonce", "encrypt"}             → {"signature"}
//   {"op": "decrypt", "key", "encrypt"}                                  → {"message", "id"}
// A failing request answers {"error": "..."}; the process ends on stdin EOF.
'use strict';

const readline = require('readline');
const { decrypt, encrypt, getSignature } = require('@wecom/crypto');

function one(req) {
  try {
    switch (req.op) {
      case 'seal': {
        const ciphered = encrypt(req.key, req.message, req.id || '');
        return { encrypt: ciphered, signature: getSignature(req.token, req.timestamp, req.nonce, ciphered) };
      }
      case 'encrypt':
        return { encrypt: encrypt(req.key, req.message, req.id || '') };
      case 'sign':
        return { signature: getSignature(req.token, req.timestamp, req.nonce, req.encrypt) };
      case 'decrypt': {
        const { message, id } = decrypt(req.key, req.encrypt);
        return { message, id };
      }
      default:
        return { error: `unknown op ${req.op}` };
    }
  } catch (err) {
    return { error: String(err && err.message ? err.message : err) };
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let req;
  try {
    req = JSON.parse(line);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: 'not JSON' })}\n`);
    return;
  }
  const answer = Array.isArray(req) ? req.map(one) : one(req);
  process.stdout.write(`${JSON.stringify(answer)}\n`);
});
rl.on('close', () => process.exit(0));
