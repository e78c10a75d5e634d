// Test harness for tests/test_telegram_e2e.py: the telegram-test-api emulator plus a thin proxy in front
// of its Bot API side, so python-telegram-bot 22 can talk to it.
//
//   node harness.js EMULATOR_PORT [PROXY_PORT]
//   → prints one line {"emulator": <port>, "proxy": <port>} when both listen; stops on SIGTERM or stdin EOF.
//
// The bot talks to the proxy (HUANJIE_TELEGRAM_BASE_URL=http://127.0.0.1:<proxy>); tests drive users
// through the emulator's own client API (/sendMessage, /sendCommand, /sendCallback, /getUpdatesHistory).
// The proxy forwards every Bot API call and fixes exactly what 4.2.1 gets wrong for a real client:
//   getMe                  lacks is_bot                       → is_bot: true
//   sendMessage            date in milliseconds                → seconds
//                          echoes JSON params as strings       → objects (link_preview_options, entities …)
//   editMessage*           result null                         → the edited message
//   callback_query         lacks chat_instance                 → one derived from the chat id
//   getUpdates             ignores timeout (busy loop)         → long poll up to `timeout` seconds
//   unsupported methods    HTTP 500                            → settings calls answer true, others 400
//   setWebhook             no secret header on deliveries      → deliveries pass through the proxy, which
//                                                                adds X-Telegram-Bot-Api-Secret-Token
// GET /__calls lists the Bot API calls received (method + params), so tests can see toasts and menus.
'use strict';

const http = require('http');
const TelegramServer = require('telegram-test-api');

const emulatorPort = Number(process.argv[2]);
const proxyPort = Number(process.argv[3] || 0);
const HOST = '127.0.0.1';
const emulatorUrl = `http://${HOST}:${emulatorPort}`;
const ANSWER_TRUE = new Set([
  'setMyCommands', 'deleteMyCommands', 'setChatMenuButton', 'setMyDescription', 'setMyShortDescription',
  'setMyName', 'setMyDefaultAdministratorRights', 'sendChatAction',
]);

const calls = [];
const webhooks = {}; // token -> {url, secret}
let proxyAddress = '';

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseParams(req, body, url) {
  const params = Object.fromEntries(url.searchParams);
  const type = req.headers['content-type'] || '';
  const text = body.toString('utf8');
  if (type.includes('application/json') && text) return { ...params, ...JSON.parse(text) };
  if (type.includes('application/x-www-form-urlencoded')) return { ...params, ...Object.fromEntries(new URLSearchParams(text)) };
  if (type.includes('multipart/form-data')) return { ...params, multipart: true };
  return params;
}

function send(res, status, data) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(data));
}

async function emulator(path, params) {
  const resp = await fetch(`${emulatorUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(params),
  });
  const text = await resp.text();
  let data;
  try { data = JSON.parse(text); } catch (_e) { data = { message: text }; }
  return { status: resp.status, data };
}

function fixUpdate(update) {
  const query = update.callback_query;
  if (query && !query.chat_instance) {
    const chatId = query.message && query.message.chat ? query.message.chat.id : query.from.id;
    query.chat_instance = `emulated-${chatId}`;
  }
  return update;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function botApi(token, method, params, res) {
  calls.push({ token, method, params });
  if (params.multipart) {
    send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${method} with files is not supported by the emulator` });
    return;
  }
  if (method === 'setWebhook') {
    webhooks[token] = { url: params.url, secret: params.secret_token || '' };
    params = { ...params, url: `${proxyAddress}/__webhook/${token}` };
  }
  if (method === 'getUpdates') {
    const deadline = Date.now() + 1000 * Math.min(Number(params.timeout || 0), 50);
    for (;;) {
      const { status, data } = await emulator(`/bot${token}/getUpdates`, params);
      if (status !== 200 || (data.result && data.result.length) || Date.now() >= deadline) {
        if (data.result) data.result = data.result.map(fixUpdate);
        send(res, status, data);
        return;
      }
      await sleep(30);
    }
  }
  const { status, data } = await emulator(`/bot${token}/${method}`, params);
  if (status === 500 && /is not supported/.test(data.message || '')) {
    if (ANSWER_TRUE.has(method)) send(res, 200, { ok: true, result: true });
    else send(res, 400, { ok: false, error_code: 400, description: `Bad Request: method ${method} is not supported by the emulator` });
    return;
  }
  if (method === 'getMe' && data.result) data.result.is_bot = true;
  if (method === 'sendMessage' && data.result) {
    if (data.result.date > 1e11) data.result.date = Math.floor(data.result.date / 1000);
    for (const [key, value] of Object.entries(data.result)) {
      if (typeof value === 'string' && /^[[{]/.test(value) && key !== 'text') {
        try { data.result[key] = JSON.parse(value); } catch (_e) { /* a text that only looks like JSON */ }
      }
    }
  }
  if (method.startsWith('editMessage') && data.ok && data.result == null) {
    let markup = params.reply_markup;
    if (typeof markup === 'string') markup = JSON.parse(markup);
    data.result = {
      message_id: Number(params.message_id),
      date: Math.floor(Date.now() / 1000),
      edit_date: Math.floor(Date.now() / 1000),
      chat: { id: Number(params.chat_id), first_name: 'Bot', type: 'private' },
      ...(params.text !== undefined ? { text: params.text } : {}),
      ...(markup && markup.inline_keyboard ? { reply_markup: markup } : {}),
    };
  }
  send(res, status, data);
}

async function deliverWebhook(token, body, res) {
  const hook = webhooks[token];
  if (!hook) { send(res, 404, { ok: false }); return; }
  const update = fixUpdate(JSON.parse(body.toString('utf8')));
  const headers = { 'content-type': 'application/json' };
  if (hook.secret) headers['X-Telegram-Bot-Api-Secret-Token'] = hook.secret;
  const resp = await fetch(hook.url, { method: 'POST', headers, body: JSON.stringify(update) });
  res.writeHead(resp.status, { 'content-type': 'text/plain' });
  res.end(await resp.text());
}

const proxy = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, `http://${HOST}`);
    const body = await readBody(req);
    if (url.pathname === '/__calls') { send(res, 200, { ok: true, result: calls }); return; }
    const hook = url.pathname.match(/^\/__webhook\/([^/]+)$/);
    if (hook) { await deliverWebhook(decodeURIComponent(hook[1]), body, res); return; }
    const api = url.pathname.match(/^\/bot([^/]+)\/([A-Za-z]+)$/);
    if (!api) { send(res, 404, { ok: false, error_code: 404, description: 'Not Found' }); return; }
    await botApi(decodeURIComponent(api[1]), api[2], parseParams(req, body, url), res);
  } catch (err) {
    send(res, 502, { ok: false, error_code: 502, description: `proxy: ${err}` });
  }
});

async function main() {
  const server = new TelegramServer({ port: emulatorPort, host: HOST, storeTimeout: 600 });
  await server.start();
  await new Promise((resolve) => proxy.listen(proxyPort, HOST, resolve));
  proxyAddress = `http://${HOST}:${proxy.address().port}`;
  process.stdout.write(`${JSON.stringify({ emulator: emulatorPort, proxy: proxy.address().port })}\n`);
  const stop = async () => {
    proxy.close();
    await server.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop); // the test process went away
  process.stdin.resume();
}

main().catch((err) => {
  process.stderr.write(`harness failed: ${err && err.stack}\n`);
  process.exit(1);
});
