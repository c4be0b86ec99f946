// Headless-Chromium rapid-refresh proof for rampart (FAILURES.md section 4).
//
//   node refresh.mjs --url https://127.0.0.1:PORT/ --ca certs/dev/ca.pem \
//        [--reloads 320] [--tabs 4] [--timeout 240] [--protocols h2,h1,h3] [--seed N]
//        [--resume-after S]
//
// The dev CA must already be trusted through the NSS database under $HOME/.pki/nssdb
// (loadtest/scripts/browser.sh sets that up). No --ignore-certificate-errors, no SPKI pins,
// no ignoreHTTPSErrors: the certificate is checked by Chromium for real, and a first
// step proves it by loading the same URL in a Chromium whose NSS database lacks the CA
// (that load must fail with net::ERR_CERT_AUTHORITY_INVALID; over QUIC, with
// net::ERR_QUIC_PROTOCOL_ERROR whose cause the browser's net log shows to be that same
// certificate error).
//
// Then several tabs (split over an HTTP/2 Chromium, one started with --disable-http2,
// whose aborted transfers close connections so that new ones resume TLS sessions, and
// with h3 one that speaks only HTTP/3 to https://localhost:PORT: --origin-to-force-quic-on,
// no TCP at all) reload
// the demo SPA rapidly: reloads and navigations to deep SPA routes cut short 0-60 ms after
// commit, "F5 mashing" (a reload sent without waiting for anything), and full loads that
// check that the app's JS ran. Every failed request is recorded by its net error;
// net::ERR_ABORTED (our own navigation cancelled it) is counted apart, anything else fails
// the run, as does a response >= 400, a JS error, a crash, or an app that is not ready
// after the final load in every tab. The protocol of every response, as the browser's own
// network log reports it (DevTools Network.responseReceived: response.protocol), must be
// the tab's: "h3", "h2" or "http/1.1". With --resume-after S, every tab then waits S
// seconds without a request (longer than the server's --idle-timeout, so the server closes
// the connections) and loads the app once more, over new connections that resume the TLS
// session (a QUIC resumption for the h3 tabs). Only loopback URLs are accepted.

import { chromium } from 'playwright-core';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// ------------------------------------------------------------------ options

function parseArgs(argv) {
  const env = process.env;
  const o = {
    url: env.RAMPART_URL,
    ca: env.RAMPART_CA,
    reloads: Number(env.BROWSER_RELOADS || 400),
    tabs: Number(env.BROWSER_TABS || 4),
    timeout: Number(env.BROWSER_TIMEOUT || 240),
    protocols: (env.BROWSER_PROTOCOLS || 'h2,h1').split(','),
    seed: Number(env.BROWSER_SEED || Date.now() % 1000000),
    chromium: env.CHROMIUM || '/usr/bin/chromium',
    negative: (env.BROWSER_NEGATIVE_CHECK || '1') !== '0',
    resumeAfter: Number(env.BROWSER_RESUME_AFTER || 0),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--url': o.url = v(); break;
      case '--ca': o.ca = v(); break;
      case '--reloads': o.reloads = Number(v()); break;
      case '--tabs': o.tabs = Number(v()); break;
      case '--timeout': o.timeout = Number(v()); break;
      case '--protocols': o.protocols = v().split(','); break;
      case '--seed': o.seed = Number(v()); break;
      case '--chromium': o.chromium = v(); break;
      case '--no-negative-check': o.negative = false; break;
      case '--resume-after': o.resumeAfter = Number(v()); break;
      case '-h': case '--help':
        console.log('usage: node refresh.mjs --url https://127.0.0.1:PORT/ --ca CA.pem [--reloads N] [--tabs N] [--timeout S] [--protocols h2,h1,h3] [--seed N] [--no-negative-check] [--resume-after S]');
        process.exit(0);
        break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!o.url) throw new Error('--url (or RAMPART_URL) is required');
  const u = new URL(o.url);
  if (u.protocol !== 'https:') throw new Error(`--url must be https: ${o.url}`);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) {
    throw new Error(`--url must be a loopback address (127.0.0.1, localhost, [::1]): ${o.url}`);
  }
  for (const [k, n] of [['reloads', o.reloads], ['tabs', o.tabs], ['timeout', o.timeout]]) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} must be a positive integer`);
  }
  if (!Number.isInteger(o.resumeAfter) || o.resumeAfter < 0) throw new Error('--resume-after must be a whole number of seconds');
  o.protocols = o.protocols.map((p) => p.trim()).filter(Boolean);
  for (const p of o.protocols) if (!(p in WIRE_PROTOCOL)) throw new Error(`--protocols: unknown ${p} (h2, h1, h3)`);
  if (o.protocols.length === 0) throw new Error('--protocols is empty');
  if (new Set(o.protocols).size !== o.protocols.length) throw new Error(`--protocols: ${o.protocols} names one twice`);
  if (o.tabs < o.protocols.length) o.protocols = o.protocols.slice(0, o.tabs);
  o.port = u.port || '443';
  // HTTP/3 is served on the same port over UDP. Its tabs use the name localhost (the dev
  // certificate's name, sent as SNI as a real site's would be); see launch() for how it
  // resolves.
  o.address = u.hostname === 'localhost' ? '127.0.0.1' : u.hostname;
  o.quicOrigin = `https://localhost:${o.port}`;
  o.origins = { h2: u.origin, h1: u.origin, h3: o.quicOrigin };
  o.urls = { h2: o.url, h1: o.url, h3: new URL(u.pathname + u.search, o.quicOrigin).href };
  return o;
}

// What DevTools reports as response.protocol for each tab protocol (the ALPN id).
const WIRE_PROTOCOL = { h2: 'h2', h1: 'http/1.1', h3: 'h3' };

const opt = parseArgs(process.argv.slice(2));
const T0 = Date.now();
const now = () => Date.now() - T0;

// Small deterministic PRNG (mulberry32) so a failing mix can be replayed with --seed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Routes: real client-side routes and unknown extension-less paths; the server answers
// every one of them with index.html (SPA fallback), the router shows "Not found" for the
// unknown ones, and the app must boot either way.
const ROUTES = ['/', '/dashboard', '/dashboard/settings', '/about', '/settings', '/files',
  '/files/2024/report', '/index.html'];

const LAUNCH_ARGS = [
  '--no-sandbox', // we run as root in CI
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking', // no connections to Google (refused by the closed network anyway)
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--disable-domain-reliability',
  '--no-pings',
];
for (const a of LAUNCH_ARGS) {
  if (/ignore-certificate|spki/i.test(a)) throw new Error(`refusing to launch with ${a}`);
}

// ------------------------------------------------------------------ bookkeeping

const stats = {
  reloads: 0, // navigations started in the loop (reload, goto, or mashed reload)
  reloads_by_kind: {},
  started_before_previous_load: 0, // navigations started while the previous one had not fired load
  full_loads_app_ready: 0,
  requests: 0,
  responses: 0,
  responses_ok: 0, // < 400 (200, 304, 206...)
  responses_by_status: {},
  aborted_by_navigation: 0, // requestfailed net::ERR_ABORTED
  navigation_interrupted: 0, // page.goto/reload rejected because a newer navigation took over
  commands_refused_between_documents: 0, // CDP 'Not attached to an active page' (retried, not counted)
  // The browser's own record (DevTools Network.responseReceived) of the protocol of every
  // response, by the tabs' protocol: { h3: { h3: N }, h2: { h2: N }, h1: { 'http/1.1': N } }.
  wire_protocols: {},
  wire_mismatches: 0, // responses whose protocol was not the tab's
  errors_by_text: {},
};
const errors = []; // { t, tab, kind, text, url }
const notes = [];

function addError(tab, kind, text, url) {
  stats.errors_by_text[text] = (stats.errors_by_text[text] || 0) + 1;
  errors.push({ t_ms: now(), tab, kind, text, url });
  if (errors.length <= 50) console.error(`[${now()} ms] tab ${tab}: ${kind} ${text} ${url || ''}`);
}

function inc(obj, key) { obj[key] = (obj[key] || 0) + 1; }

// A rejection of page.goto()/page.reload() that our own next navigation caused.
function isSelfInterruption(msg) {
  return /net::ERR_ABORTED|interrupted by another navigation|frame was detached|Navigation to .* is interrupted|Target page, context or browser has been closed/.test(msg);
}

function launch(protocol, home, netLog) {
  const args = [...LAUNCH_ARGS];
  if (protocol === 'h3') {
    // Only HTTP/3, from the first request on: no TCP connection, no Alt-Svc discovery, no
    // fallback (a QUIC failure is the request's failure). Chromium resolves localhost to
    // ::1 first and, unlike TCP, does not try the next address when QUIC to ::1 is refused;
    // the rule gives it rampart's address. The name stays localhost for everything else:
    // the URL, SNI and the certificate check.
    args.push('--enable-quic', `--origin-to-force-quic-on=localhost:${opt.port}`,
      `--host-resolver-rules=MAP localhost ${opt.address}`);
  } else {
    // No HTTP/3 (rampart's Alt-Svc would move these tabs to it).
    args.push('--disable-quic');
    if (protocol === 'h1') args.push('--disable-http2');
  }
  if (netLog) args.push(`--log-net-log=${netLog}`);
  const env = { ...process.env };
  if (home) env.HOME = home;
  return chromium.launch({ executablePath: opt.chromium, args, env, timeout: 60000 });
}

// ------------------------------------------------------------------ certificate checks

async function negativeCheck(protocol) {
  // Same launch, but a HOME whose NSS database does not hold the dev CA: the load must be
  // refused by the certificate check. If it is not, the positive results prove nothing.
  const home = mkdtempSync(join(tmpdir(), 'rampart-untrusted-'));
  const netLog = join(home, 'netlog.json');
  const url = opt.urls[protocol];
  let browser = await launch(protocol, home, protocol === 'h3' ? netLog : undefined);
  try {
    const page = await browser.newPage();
    let failure = null;
    try {
      await page.goto(url, { waitUntil: 'commit', timeout: 20000 });
    } catch (e) {
      failure = String(e && e.message);
    }
    if (failure === null) throw new Error(`certificate check is NOT real: ${url} loaded in a Chromium that does not trust the dev CA`);
    const m = failure.match(/net::ERR_[A-Z0-9_]+/);
    if (protocol !== 'h3') {
      if (!m || m[0] !== 'net::ERR_CERT_AUTHORITY_INVALID') throw new Error(`negative check: expected net::ERR_CERT_AUTHORITY_INVALID, got ${failure.split('\n')[0]}`);
      return m[0];
    }
    // Over QUIC Chromium reports a failed certificate check as a failed QUIC handshake
    // (net::ERR_QUIC_PROTOCOL_ERROR); its net log (written when the browser exits) names
    // the cause: the certificate verifier's net_error and the session's verify failure.
    if (!m || m[0] !== 'net::ERR_QUIC_PROTOCOL_ERROR') throw new Error(`negative check (h3): expected net::ERR_QUIC_PROTOCOL_ERROR, got ${failure.split('\n')[0]}`);
    await browser.close().catch(() => {});
    browser = null;
    const cause = certFailureInNetLog(netLog);
    return `${m[0]} (net log: ${cause})`;
  } finally {
    if (browser) await browser.close().catch(() => {});
    rmSync(home, { recursive: true, force: true });
  }
}

// The certificate error behind a failed QUIC handshake, from a Chromium net log: the
// CERT_VERIFIER_JOB's net_error must be ERR_CERT_AUTHORITY_INVALID (-202) and the QUIC
// session must have logged QUIC_SESSION_CERTIFICATE_VERIFY_FAILED.
function certFailureInNetLog(path) {
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`negative check (h3): no net log at ${path}: ${e.message}`);
  }
  let log;
  try {
    log = JSON.parse(text);
  } catch {
    // A log cut short (the browser did not finish writing it) lacks its closing brackets.
    log = JSON.parse(text.replace(/,?\s*$/, '') + ']}');
  }
  const type = log.constants.logEventTypes;
  const errors = log.constants.netError || {};
  const verifier = log.events.filter((e) => e.type === type.CERT_VERIFIER_JOB && e.params && 'net_error' in e.params);
  const sessionFailed = log.events.some((e) => e.type === type.QUIC_SESSION_CERTIFICATE_VERIFY_FAILED);
  const codes = verifier.map((e) => e.params.net_error);
  const name = (code) => Object.keys(errors).find((k) => errors[k] === code) || String(code);
  if (!codes.includes(-202) || !sessionFailed) {
    throw new Error(`negative check (h3): the net log does not show the certificate rejected (verifier net_error ${codes.map(name).join(',') || 'none'}, QUIC_SESSION_CERTIFICATE_VERIFY_FAILED ${sessionFailed})`);
  }
  return `CERT_VERIFIER_JOB net_error=${name(-202)}, QUIC_SESSION_CERTIFICATE_VERIFY_FAILED`;
}

async function positiveCheck(st) {
  const resp = await st.page.goto(opt.urls[st.protocol], { waitUntil: 'load', timeout: 20000 });
  if (!resp || resp.status() !== 200) throw new Error(`first load: status ${resp && resp.status()}`);
  const sd = await resp.securityDetails();
  if (!sd) throw new Error('first load: no securityDetails (not HTTPS?)');
  if (opt.ca) {
    const ca = new X509Certificate(readFileSync(opt.ca));
    const cn = (ca.subject.match(/CN=([^\n]+)/) || [])[1];
    if (cn && sd.issuer !== cn) throw new Error(`first load: issuer ${sd.issuer}, expected the dev CA ${cn}`);
  }
  return sd;
}

// ------------------------------------------------------------------ one tab

async function setupTab(context, tab, protocol, cacheDisabled) {
  const page = await context.newPage();
  page.setDefaultNavigationTimeout(20000);
  page.setDefaultTimeout(20000);
  const st = { tab, protocol, cacheDisabled, requests: 0, gen: 0, loadedGen: 0, page, wire: {} };
  page.on('request', () => { stats.requests++; st.requests++; });
  page.on('response', (r) => {
    stats.responses++;
    const s = r.status();
    inc(stats.responses_by_status, s);
    if (s < 400) stats.responses_ok++;
    else addError(tab, 'http_status', `HTTP ${s}`, r.url());
  });
  page.on('requestfailed', (r) => {
    const text = (r.failure() && r.failure().errorText) || 'unknown';
    if (text === 'net::ERR_ABORTED') stats.aborted_by_navigation++;
    else addError(tab, 'requestfailed', text, r.url());
  });
  page.on('console', (m) => {
    if (m.type() === 'error') addError(tab, 'console_error', m.text(), m.location() && m.location().url);
  });
  page.on('pageerror', (e) => addError(tab, 'pageerror', String(e && e.message), page.url()));
  page.on('crash', () => addError(tab, 'crash', 'page crashed', page.url()));
  page.on('load', () => { st.loadedGen = st.gen; });
  st.cdp = await context.newCDPSession(page);
  // The browser's own network log: the protocol each response came over (from the cache
  // too: Chromium keeps the protocol a cached response was fetched with).
  const want = WIRE_PROTOCOL[protocol];
  stats.wire_protocols[protocol] = stats.wire_protocols[protocol] || {};
  st.cdp.on('Network.responseReceived', (e) => {
    const got = (e.response && e.response.protocol) || 'none';
    inc(stats.wire_protocols[protocol], got);
    inc(st.wire, got);
    if (got !== want) {
      stats.wire_mismatches++;
      const r = e.response || {};
      addError(tab, 'wire_protocol', `${protocol} tab got a ${got} response`,
        `${r.url} (status ${r.status}, disk cache ${Boolean(r.fromDiskCache)}, prefetch cache ${Boolean(r.fromPrefetchCache)})`);
    }
  });
  await st.cdp.send('Network.enable');
  if (cacheDisabled) {
    // Every load fetches every asset from the server (as with DevTools "Disable cache").
    await st.cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  }
  return st;
}

async function appReady(page, timeout) {
  await page.waitForFunction(() => document.documentElement.dataset.app === 'ready', null, { timeout });
  return page.evaluate(() => ({
    app: document.documentElement.dataset.app,
    status: (document.getElementById('status') || {}).textContent,
    path: location.pathname,
  }));
}

async function runTab(st, quota, deadline, rand) {
  const { page, tab } = st;
  const url = (p) => new URL(p, opt.origins[st.protocol]).href;
  let done = 0;
  while (done < quota && Date.now() < deadline) {
    const r = rand();
    const route = ROUTES[Math.floor(rand() * ROUTES.length)];
    let kind;
    if (r < 0.30) kind = 'reload_cut';
    else if (r < 0.50) kind = 'goto_cut';
    else if (r < 0.70) kind = 'mash';
    else if (r < 0.80) kind = 'reload_nocache_cut';
    else kind = rand() < 0.5 ? 'reload_full' : 'goto_full';

    const before = st.loadedGen < st.gen; // the previous navigation has not fired load yet
    st.gen++;
    let outcome = 'ok';
    try {
      switch (kind) {
        case 'reload_cut':
          await page.reload({ waitUntil: 'commit' });
          break;
        case 'goto_cut':
          await page.goto(url(route), { waitUntil: 'commit' });
          break;
        case 'mash':
          // F5 without waiting for anything: the next action starts while this one is in flight.
          await st.cdp.send('Page.reload', { ignoreCache: false });
          break;
        case 'reload_nocache_cut':
          // Shift-F5: bypass the cache, so the immutable assets are fetched again too.
          await st.cdp.send('Page.reload', { ignoreCache: true });
          break;
        case 'reload_full':
        case 'goto_full': {
          if (kind === 'reload_full') await page.reload({ waitUntil: 'load' });
          else await page.goto(url(route), { waitUntil: 'load' });
          const s = await appReady(page, 15000);
          if (s.app === 'ready') stats.full_loads_app_ready++;
          break;
        }
      }
    } catch (e) {
      const msg = String(e && e.message);
      if (/Not attached to an active page/.test(msg)) {
        // DevTools refused the command while the tab was between two documents (our own
        // previous navigation was committing): nothing was sent; not a reload, not an error.
        outcome = 'busy';
      } else if (isSelfInterruption(msg) || /Execution context was destroyed|navigating and changing the execution context/.test(msg)) {
        outcome = 'interrupted';
        stats.navigation_interrupted++;
      } else {
        outcome = 'error';
        const m = msg.match(/net::ERR_[A-Z0-9_]+/);
        addError(tab, `navigation(${kind})`, m ? m[0] : msg.split('\n')[0], page.url());
      }
    }
    if (outcome === 'busy') {
      st.gen--;
      st.loadedGen = Math.min(st.loadedGen, st.gen);
      stats.commands_refused_between_documents++;
      await sleep(10);
      continue;
    }
    stats.reloads++;
    done++;
    inc(stats.reloads_by_kind, kind);
    if (before) stats.started_before_previous_load++;
    if (!kind.endsWith('_full')) await sleep(Math.floor(rand() * 61)); // 0-60 ms, then the next one
  }
  return done;
}

async function finalCheck(st, kind = 'final_load') {
  // A last full load of the app root; the app's JS must run (data-app="ready", "App ready").
  // A reload sent by the loop without waiting ("mash") may still be in flight and interrupt
  // this navigation: let it settle, and retry (only) on such an interruption.
  await st.page.waitForLoadState('load', { timeout: 10000 }).catch(() => {});
  let last = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      const resp = await st.page.goto(opt.urls[st.protocol], { waitUntil: 'load', timeout: 20000 });
      const s = await appReady(st.page, 15000);
      return { kind, tab: st.tab, protocol: st.protocol, http: resp && resp.status(), app: s.app, status_text: s.status, path: s.path, attempt };
    } catch (e) {
      last = String(e && e.message).split('\n')[0];
      if (!isSelfInterruption(last) && !/Execution context was destroyed/.test(last)) break;
      await sleep(500);
    }
  }
  return { kind, tab: st.tab, protocol: st.protocol, error: last };
}

// ------------------------------------------------------------------ main

function printSummary(extra) {
  const summary = {
    url: opt.url,
    seed: opt.seed,
    tabs: opt.tabs,
    protocols: opt.protocols,
    elapsed_s: Number((now() / 1000).toFixed(1)),
    ...stats,
    errors: errors.length,
    ...extra,
  };
  const kv = (o) => Object.entries(o).map(([k, v]) => `${k}=${v}`).join(' ') || '-';
  console.log('== browser proof summary ==');
  console.log(`certificate:  ${summary.certificate || '-'}`);
  console.log(`reloads:      ${stats.reloads} (wanted >= ${opt.reloads}) over ${opt.tabs} tabs [${(summary.requests_by_tab || []).join(' ')}], ${stats.started_before_previous_load} started before the previous load completed`);
  console.log(`  by kind:    ${kv(stats.reloads_by_kind)}`);
  console.log(`requests:     ${stats.requests} seen, ${stats.responses} responses, ${stats.responses_ok} ok (< 400); by status: ${kv(stats.responses_by_status)}`);
  const wire = Object.entries(stats.wire_protocols).map(([p, by]) => `${p} tabs: ${kv(by)}`).join('; ');
  console.log(`protocols:    ${wire || '-'} (the browser's network log); not the tab's protocol: ${stats.wire_mismatches}`);
  console.log(`aborted by our own navigation: ${stats.aborted_by_navigation} requests (net::ERR_ABORTED), ${stats.navigation_interrupted} navigation calls interrupted; ${stats.commands_refused_between_documents} reload commands refused between documents (retried)`);
  console.log(`app ready:    ${stats.full_loads_app_ready} full loads in the loop; final load: ${(summary.final_loads || []).map((f) => (f.kind === 'load_after_idle' ? 'after idle ' : '') + `tab${f.tab}/${f.protocol}=${f.error ? 'ERROR' : `${f.http} ${f.app}`}`).join(' ') || '-'}`);
  console.log(`errors:       ${errors.length} ${errors.length ? kv(stats.errors_by_text) : ''}`);
  if (errors.length) {
    console.log(`first errors (of ${errors.length}):`);
    for (const e of errors.slice(0, 30)) console.log('  ' + JSON.stringify(e));
  }
  for (const n of notes) console.log('note: ' + n);
  console.log(`result:       ${summary.result}${summary.reasons && summary.reasons.length ? ' - ' + summary.reasons.join('; ') : summary.reason ? ' - ' + summary.reason : ''}`);
  console.log('SUMMARY_JSON ' + JSON.stringify(summary));
}

const browsers = [];
let certificate = 'not checked yet';
const hardTimer = setTimeout(() => {
  addError(-1, 'timeout', `hard timeout ${opt.timeout} s`, '');
  printSummary({ certificate, result: 'FAIL', reason: `hard timeout after ${opt.timeout} s` });
  process.exitCode = 3;
  for (const b of browsers) b.close().catch(() => {});
  setTimeout(() => process.exit(3), 3000).unref();
}, opt.timeout * 1000);

async function main() {
  console.log(`browser proof: ${opt.protocols.map((p) => opt.urls[p]).filter((u, i, a) => a.indexOf(u) === i).join(' ')} reloads>=${opt.reloads} tabs=${opt.tabs} protocols=${opt.protocols.join(',')} seed=${opt.seed} chromium=${opt.chromium}`);
  let negative = 'skipped';
  if (opt.negative) {
    // Once over TCP (h2 and h1 check certificates the same way) and once over QUIC.
    const families = [...new Set(opt.protocols.map((p) => (p === 'h3' ? 'h3' : 'h2')))];
    const results = [];
    for (const p of families) {
      const r = await negativeCheck(p);
      results.push(`${p === 'h3' ? 'QUIC' : 'TCP'} ${r}`);
      console.log(`certificate check is real (${p === 'h3' ? 'QUIC' : 'TCP'}): without the CA in NSS the load fails with ${r}`);
    }
    negative = results.join('; ');
  }

  // One browser per protocol; tabs dealt round-robin; within a browser the tabs share one
  // context (one profile, shared connection pool and TLS session cache, like real tabs).
  const contexts = {};
  for (const p of opt.protocols) {
    const b = await launch(p);
    browsers.push(b);
    const how = { h2: 'HTTP/2', h1: '--disable-http2', h3: `HTTP/3 only: --origin-to-force-quic-on=localhost:${opt.port}` };
    console.log(`chromium ${b.version()} (${how[p]})`);
    contexts[p] = await b.newContext(); // no ignoreHTTPSErrors
  }
  const tabs = [];
  for (let i = 0; i < opt.tabs; i++) {
    const p = opt.protocols[i % opt.protocols.length];
    // In each browser, every other tab disables the cache (every asset from the server on
    // every load, as with DevTools' "Disable cache"); the others use it as a user's tab does.
    const nocache = Math.floor(i / opt.protocols.length) % 2 === 1;
    tabs.push(await setupTab(contexts[p], i, p, nocache));
  }

  const details = [];
  for (const st of tabs) {
    const sd = await positiveCheck(st);
    details.push(`${st.protocol}: ${sd.protocol} issuer="${sd.issuer}" subject="${sd.subjectName}"`);
  }
  certificate = `real: trusted profile ${[...new Set(details)].join('; ')}; profile without the CA: ${negative}`;
  console.log(`first load in every tab: ${[...new Set(details)].join('; ')}`);

  const rand = rng(opt.seed);
  const quota = Math.ceil(opt.reloads / opt.tabs);
  // Leave room for the final check (and the idle wait and the load after it).
  const deadline = Date.now() + Math.max(10, opt.timeout - 45 - opt.resumeAfter) * 1000;
  const loopStart = now();
  const rands = tabs.map(() => rng(Math.floor(rand() * 2 ** 32)));
  await Promise.all(tabs.map((st, i) => runTab(st, quota, deadline, rands[i])));
  const loopSeconds = (now() - loopStart) / 1000;
  console.log(`loop: ${stats.reloads} reloads in ${loopSeconds.toFixed(1)} s over ${tabs.length} tabs`);

  const finals = await Promise.all(tabs.map((st) => finalCheck(st)));
  if (opt.resumeAfter > 0 && Date.now() + (opt.resumeAfter + 25) * 1000 < T0 + opt.timeout * 1000) {
    // A user coming back to the tab: the server has closed the idle connections (GOAWAY
    // then CONNECTION_CLOSE over QUIC); the load opens new ones, resuming the TLS session.
    console.log(`idle: ${opt.resumeAfter} s without a request, then one more load in every tab`);
    await sleep(opt.resumeAfter * 1000);
    finals.push(...await Promise.all(tabs.map((st) => finalCheck(st, 'load_after_idle'))));
  } else if (opt.resumeAfter > 0) {
    addError(-1, 'load_after_idle', `no time left for the load after ${opt.resumeAfter} s idle`, '');
  }
  for (const f of finals) {
    if (f.error || f.app !== 'ready' || f.http !== 200 || f.status_text !== 'App ready') {
      addError(f.tab, f.kind, `app not ready after the ${f.kind === 'final_load' ? 'final load' : 'load after idle'}: ${f.error || JSON.stringify(f)}`, opt.urls[f.protocol]);
    }
  }
  // Let late events (requestfailed of the last loads) arrive before counting.
  await sleep(500);
  for (const b of browsers) await b.close().catch(() => {});

  const reasons = [];
  if (stats.reloads < opt.reloads) reasons.push(`only ${stats.reloads} of ${opt.reloads} reloads before the deadline`);
  if (stats.started_before_previous_load === 0) reasons.push('no reload started before the previous load completed');
  for (const p of opt.protocols) {
    const n = (stats.wire_protocols[p] || {})[WIRE_PROTOCOL[p]] || 0;
    if (n === 0) reasons.push(`no ${WIRE_PROTOCOL[p]} response in the ${p} tabs (browser's network log)`);
  }
  if (errors.length) reasons.push(`${errors.length} error(s): ${Object.entries(stats.errors_by_text).map(([k, v]) => `${k} x${v}`).join(', ')}`);
  const tabsRequests = tabs.map((t) => `${t.tab}:${t.protocol}${t.cacheDisabled ? '/nocache' : ''}=${t.requests}`);
  printSummary({
    negative_check: negative,
    certificate,
    requests_by_tab: tabsRequests,
    final_loads: finals,
    result: reasons.length ? 'FAIL' : 'PASS',
    reasons,
  });
  return reasons.length ? 1 : 0;
}

main().then(
  (code) => { clearTimeout(hardTimer); process.exit(code); },
  (e) => {
    clearTimeout(hardTimer);
    console.error(`browser proof aborted: ${e && e.stack ? e.stack : e}`);
    printSummary({ certificate, result: 'FAIL', reason: String(e && e.message) });
    process.exitCode = 2;
    for (const b of browsers) b.close().catch(() => {});
    setTimeout(() => process.exit(2), 2000).unref();
  },
);
