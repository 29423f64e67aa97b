// Drives the web UI in Debian's Chromium (headless, playwright-core)
// against a real `portcullis serve`; run by tests/e2e/test_web.py, which
// prepares the server (an administrator with TOTP, a recorded session)
// and checks afterwards what the UI changed, through the CLI.
//
//   node e2e/run.mjs CONFIG.json
//
// CONFIG: {mode: "main" or "agents", url, user, password, totp_secret,
//          target_host, target_port,
//          target_key, target_fingerprint, recorded_user, recorded_text, ssh_port, screenshots (a
//          directory or null), names: {user, asset, token}}
// Prints one JSON line of results on success; exits 1 with the failed
// step on stderr otherwise. Every page must load without console errors.
// Mode "agents" (CONFIG adds agent_id, agent_hostname, echo_port,
// rebind_credential and names.credential) prints a JSON line at each hand-over and waits for
// the line "continue" on stdin.
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { launch, readConfig, unlabelledControls } from './lib.mjs';

const cfg = readConfig();
const results = {};
let step = 'start';

function fail(msg) {
  throw new Error(`${step}: ${msg}`);
}

function expect(cond, msg) {
  if (!cond) fail(msg);
}

// RFC 6238, SHA-1, 6 digits, 30 s steps: the code an authenticator shows.
function base32(s) {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    const v = abc.indexOf(ch);
    if (v < 0) throw new Error(`bad base32 ${ch}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const out = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}

function totp(secret, t = Date.now() / 1000) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const h = createHmac('sha1', base32(secret)).update(counter).digest();
  const off = h[h.length - 1] & 0x0f;
  const n = ((h[off] & 0x7f) << 24) | (h[off + 1] << 16) | (h[off + 2] << 8) | h[off + 3];
  return String(n % 1000000).padStart(6, '0');
}

async function freshTotp(secret) {
  const left = 30 - ((Date.now() / 1000) % 30);
  if (left < 4) await new Promise((r) => setTimeout(r, (left + 0.5) * 1000));
  return totp(secret);
}

async function shot(page, name) {
  if (!cfg.screenshots) return;
  mkdirSync(cfg.screenshots, { recursive: true });
  await page.screenshot({ path: join(cfg.screenshots, `${name}.png`), fullPage: false });
}

// Console errors: none allowed, except the browser's own line for an API
// refusal the test provokes on purpose and the UI shows in words (the 401s
// of a login without a code and with a wrong one, the 404 of a grant to
// a user who does not exist).
const consoleErrors = [];
function watch(page, allowed) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const loc = m.location() || {};
    const ok = allowed.some((a) => m.text().includes('Failed to load resource') &&
      (!a.step || a.step === step) && (loc.url || '').includes(a.url) &&
      m.text().includes(`status of ${a.status}`));
    if (!ok) consoleErrors.push(`[${step}] ${m.text()} ${loc.url || ''}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`[${step}] page error: ${e.message}`));
}

async function visit(page, path, heading) {
  await page.goto(cfg.url + path);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
  await page.waitForLoadState('networkidle');
  // keyboard and screen-reader basics: every control has a label or text
  const bare = await unlabelledControls(page);
  expect(bare.length === 0, `${path}: controls without a label: ${bare.join(' ')}`);
}

// Lines from the test on stdin: the agents flow waits for "continue"
// while the test starts an agent or checks a tunnel from outside.
const stdinLines = [];
let stdinWaiter = null;
createInterface({ input: process.stdin }).on('line', (l) => {
  stdinLines.push(l);
  if (stdinWaiter) stdinWaiter();
});
async function handOver(obj) {
  console.log(JSON.stringify(obj));
  while (stdinLines.length === 0) await new Promise((r) => { stdinWaiter = r; });
  stdinWaiter = null;
  const l = stdinLines.shift();
  if (l !== 'continue') fail(`the test said ${l}`);
}

async function signIn(page) {
  await page.goto(`${cfg.url}/login`);
  await page.getByLabel('User name').fill(cfg.user);
  await page.getByLabel('Password').fill(cfg.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
}

// The browser terminal. CONFIG (mode "terminal"): url, user, password,
// totp_secret (an administrator with TOTP, granted asset_id), asset_id,
// plain_user, plain_password (no TOTP, no grant), screenshots. A wrong
// TOTP code and a user without a grant are refused in words; then a
// shell runs a command, follows a resize, exits, and its recording plays.
async function signInTotp(page) {
  await page.goto(`${cfg.url}/login`);
  await page.getByLabel('User name').fill(cfg.user);
  await page.getByLabel('Password').fill(cfg.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('TOTP code (required)').fill(await freshTotp(cfg.totp_secret));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  return Math.floor(Date.now() / 1000 / 30);
}

async function termText(page) {
  return page.locator('.terminal-box .xterm-rows').innerText();
}

async function termRun(page, cmd, re) {
  await page.locator('.terminal-box .xterm-helper-textarea').focus();
  await page.keyboard.type(cmd);
  await page.keyboard.press('Enter');
  let m = null;
  const deadline = Date.now() + 15000;
  while (!(m = (await termText(page)).match(re)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
  }
  if (!m) fail(`no ${re} in the terminal after ${cmd}:\n${await termText(page)}`);
  return m;
}

async function terminalFlow(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await ctx.newPage();
  watch(page, [{ url: '/api/v1/login', status: 401 }]);

  step = 'sign in with TOTP';
  const loginStep = await signInTotp(page);

  step = 'a wrong TOTP code in the terminal is refused in words';
  await visit(page, `/assets/${cfg.asset_id}`, /^Asset /);
  await page.getByRole('link', { name: 'Terminal' }).click();
  await page.getByRole('heading', { level: 1, name: /^Terminal: / }).waitFor();
  const answer = page.getByLabel('TOTP code:');
  await answer.waitFor({ timeout: 20000 });
  const now = Date.now() / 1000;
  const near = [totp(cfg.totp_secret, now - 30), totp(cfg.totp_secret, now), totp(cfg.totp_secret, now + 30)];
  const wrong = ['000000', '111111', '222222', '333333'].find((c) => !near.includes(c));
  await answer.fill(wrong);
  await page.keyboard.press('Enter');
  const alert = page.getByRole('alert');
  await alert.waitFor({ timeout: 20000 });
  results.wrong_totp = (await alert.innerText()).trim();
  await shot(page, 'terminal-refused');

  step = 'a user without a grant is refused in words';
  const ctx2 = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const other = await ctx2.newPage();
  watch(other, []);
  await other.goto(`${cfg.url}/login`);
  await other.getByLabel('User name').fill(cfg.plain_user);
  await other.getByLabel('Password').fill(cfg.plain_password);
  await other.getByRole('button', { name: 'Sign in' }).click();
  await other.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  await other.goto(`${cfg.url}/assets/${cfg.asset_id}/terminal`);
  const alert2 = other.getByRole('alert');
  await alert2.waitFor({ timeout: 20000 });
  results.no_grant = (await alert2.innerText()).trim();
  await ctx2.close();

  step = 'a shell in the page, TOTP asked in the page';
  while (Math.floor(Date.now() / 1000 / 30) <= loginStep) {
    await new Promise((r) => setTimeout(r, 500)); // the login used this step's code
  }
  await page.getByRole('button', { name: 'Connect again' }).click();
  await page.getByLabel('TOTP code:').fill(await freshTotp(cfg.totp_secret));
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByText('Connected.').waitFor({ timeout: 20000 });
  expect(await page.getByRole('alert').count() === 0, 'an error is still shown');
  await termRun(page, 'echo pc-$((6*7))', /pc-42/);

  step = 'the terminal follows the window';
  const before = await termRun(page, 'echo sz1-$(stty size | tr " " x)', /sz1-(\d+)x(\d+)/);
  await page.setViewportSize({ width: 900, height: 600 });
  await page.waitForTimeout(500);
  const after = await termRun(page, 'echo sz2-$(stty size | tr " " x)', /sz2-(\d+)x(\d+)/);
  results.size_before = [Number(before[1]), Number(before[2])];
  results.size_after = [Number(after[1]), Number(after[2])];
  expect(results.size_after[1] < results.size_before[1], `columns ${results.size_before} -> ${results.size_after}`);
  await page.setViewportSize({ width: 1280, height: 800 });
  await shot(page, 'terminal');

  step = 'exit ends the session';
  await page.locator('.terminal-box .xterm-helper-textarea').focus();
  await page.keyboard.type('exit');
  await page.keyboard.press('Enter');
  await page.getByText('The session ended (exit status 0).').waitFor({ timeout: 20000 });
  results.violations = await page.evaluate(() => window.__violations);
  expect(results.violations.length === 0, `CSP violations: ${results.violations}`);

  step = 'the browser session\'s recording plays';
  await visit(page, `/sessions?user=${encodeURIComponent(cfg.user)}&kind=shell&result=ok`, 'Sessions');
  await page.getByRole('cell').getByRole('link').first().click();
  await page.getByRole('heading', { level: 1, name: /^Session of / }).waitFor();
  await page.getByRole('button', { name: 'Play recording' }).click();
  await page.waitForFunction(() => {
    const el = document.querySelector('.player');
    return el && el.innerText.includes('pc-42');
  }, null, { timeout: 20000 });
  results.played = true;

  expect(consoleErrors.length === 0, `console errors:\n${consoleErrors.join('\n')}`);
  console.log(JSON.stringify(results));
}

// Agent credentials with the install snippet, then the agent the test
// started from that snippet, its facts and a tunnel: create, ACL, close.
async function agentsFlow(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  const codeline = (label) => page.locator('.codeline')
    .filter({ has: page.locator('.codeline-label', { hasText: new RegExp(`^${label}$`) }) })
    .locator('code');
  watch(page, []);
  step = 'sign in';
  await signIn(page);

  step = 'create an agent credential';
  await visit(page, '/credentials', 'Agent credentials');
  await page.getByLabel('Description (optional)').fill(cfg.names.credential);
  await page.getByRole('button', { name: 'Create credential' }).click();
  const snippet = await codeline('Install snippet').innerText();
  const credential = await codeline('Credential').innerText();
  await shot(page, 'credentials');
  await page.getByRole('button', { name: 'I have copied it' }).click();
  await page.getByRole('cell', { name: cfg.names.credential }).waitFor();
  await handOver({ credential, snippet });

  step = 'the agent shows online with its facts';
  await visit(page, '/agents', 'Agents');
  await page.getByLabel('Search agents').fill(cfg.agent_id);
  const arow = page.locator('tbody tr').filter({ has: page.locator(`a[href="/agents/${cfg.agent_id}"]`) });
  await arow.getByRole('cell', { name: 'online', exact: true }).waitFor();
  await shot(page, 'agents');
  await arow.getByRole('link').click();
  await page.getByRole('heading', { level: 1, name: /^Agent / }).waitFor();
  const facts = await page.locator('dl.facts').innerText();
  expect(facts.includes('online') && facts.includes(cfg.agent_hostname), `facts ${facts}`);

  step = 'create a tunnel';
  await page.getByLabel('To HOST:PORT').fill(`127.0.0.1:${cfg.echo_port}`);
  await page.getByLabel('Allowed clients (CIDRs; default: you)').fill('127.0.0.1/32');
  await page.getByRole('button', { name: 'Create tunnel' }).click();
  const trow = page.getByRole('row', { name: new RegExp(`127\\.0\\.0\\.1:${cfg.echo_port}`) });
  await trow.waitFor();
  let state = '';
  for (let i = 0; i < 40 && state !== 'listening'; i++) {
    await page.reload();
    await trow.waitFor();
    state = (await trow.getByRole('cell').nth(2).innerText()).trim();
    if (state !== 'listening') await page.waitForTimeout(250);
  }
  expect(state === 'listening', `tunnel state ${state}`);
  const port = Number((await trow.getByRole('cell').first().innerText()).split(':').pop());
  await page.waitForLoadState('networkidle');
  await shot(page, 'agent');
  await handOver({ tunnel_port: port });

  step = 'change the tunnel ACL';
  await trow.getByLabel('Allowed clients (CIDRs)').fill('10.9.9.9/32');
  await trow.getByRole('button', { name: 'Save ACL' }).click();
  await page.waitForLoadState('networkidle');
  await page.reload();
  await trow.waitFor();
  const acl = await trow.getByLabel('Allowed clients (CIDRs)').inputValue();
  expect(acl === '10.9.9.9/32', `acl ${acl}`);
  await handOver({ acl });

  step = 'close the tunnel';
  await trow.getByRole('button', { name: 'Close' }).click();
  await trow.getByRole('button', { name: 'Confirm: close' }).click();
  await trow.waitFor({ state: 'detached' });

  if (cfg.rebind_credential) {
    step = 'rebind the agent to another credential';
    await page.getByLabel('Credential ID').fill(cfg.rebind_credential);
    await page.getByRole('button', { name: 'Rebind', exact: true }).click();
    await page.locator('dl.facts').getByText(cfg.rebind_credential).waitFor();
  }
  step = 'console';
  expect(consoleErrors.length === 0, `console errors:\n${consoleErrors.join('\n')}`);
  console.log(JSON.stringify({ closed: true }));
}

const browser = await launch();

try {
  if (cfg.mode === 'agents') {
    await agentsFlow(browser);
  } else if (cfg.mode === 'terminal') {
    await terminalFlow(browser);
  } else {
    await mainFlow(browser);
  }
} catch (e) {
  console.error(`web e2e failed at step "${step}": ${e.message}`);
  if (consoleErrors.length) console.error(`console errors so far:\n${consoleErrors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  process.stdin.destroy();
}

async function mainFlow() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cfg.url });
  const page = await ctx.newPage();
  // the <code> of a CodeLine by its exact label
  const codeline = (label) => page.locator('.codeline')
    .filter({ has: page.locator('.codeline-label', { hasText: new RegExp(`^${label}$`) }) })
    .locator('code');
  watch(page, [{ url: '/api/v1/login', status: 401 },
    { url: '/grants', status: 404, step: 'an API refusal is shown in words' }]);

  step = 'login page';
  await page.goto(`${cfg.url}/`);
  await page.waitForURL(/\/login$/);
  await page.getByLabel('User name').waitFor();
  await shot(page, 'login');

  step = 'login without a code asks for TOTP';
  await page.getByLabel('User name').fill(cfg.user);
  await page.getByLabel('Password').fill(cfg.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByLabel('TOTP code (required)').waitFor();

  step = 'a wrong code is refused in words';
  const good = await freshTotp(cfg.totp_secret);
  const wrong = String((Number(good) + 500000) % 1000000).padStart(6, '0');
  await page.getByLabel('TOTP code (required)').fill(wrong);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const alert = page.getByRole('alert');
  await alert.waitFor();
  results.login_refusal = (await alert.innerText()).trim();
  expect(/TOTP code/.test(results.login_refusal), `refusal says ${results.login_refusal}`);

  step = 'login with TOTP';
  await page.getByLabel('TOTP code (required)').fill(await freshTotp(cfg.totp_secret));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  await page.waitForLoadState('networkidle');

  step = 'keyboard: the first Tab reaches the skip link';
  await page.locator('body').focus();
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
  expect(focused === 'Skip to content', `focused ${focused}`);

  step = 'create a user';
  await visit(page, '/users', 'Users');
  await page.getByLabel('New user name').fill(cfg.names.user);
  await page.getByLabel('Password', { exact: true }).fill('Web-user-pw-1');
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.getByRole('link', { name: cfg.names.user, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: `User ${cfg.names.user}` }).waitFor();

  step = 'enrol TOTP with a QR code';
  await page.getByRole('button', { name: 'Enable TOTP' }).click();
  const qr = page.getByRole('img', { name: /QR code/ });
  await qr.waitFor();
  const dark = await qr.evaluate((c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 64) n++;
    return n / (d.length / 4);
  });
  expect(dark > 0.2 && dark < 0.8, `QR canvas is ${dark} dark`);
  const secretText = await codeline('Secret').innerText();
  expect(/^[A-Z2-7]{16,}$/.test(secretText), `secret ${secretText}`);
  results.enrolled_secret = secretText;
  await page.waitForLoadState('networkidle');
  await shot(page, 'user-totp');

  step = 'create an asset';
  await visit(page, '/assets', 'Assets');
  await page.getByRole('button', { name: 'New asset' }).click();
  await page.getByLabel('Name', { exact: true }).fill(cfg.names.asset);
  await page.getByLabel('Host', { exact: true }).fill(cfg.target_host);
  await page.getByLabel('Port').fill(String(cfg.target_port));
  await page.getByLabel('Login on the target').fill('root');
  await page.getByLabel('Private key (vaulted, PEM/OpenSSH)').fill(cfg.target_key);
  await page.getByLabel('Host key fingerprint').fill(cfg.target_fingerprint);
  await page.getByRole('button', { name: 'Create asset' }).click();
  await page.getByRole('heading', { level: 1, name: `Asset ${cfg.names.asset}` }).waitFor();
  results.asset_url = page.url();

  step = 'the connection command for the signed-in user';
  const sshLine = codeline('ssh');
  await sshLine.waitFor();
  results.ssh_command = await sshLine.innerText();
  const want = `ssh '${cfg.user}#${cfg.names.asset}@127.0.0.1' -p ${cfg.ssh_port}`;
  expect(results.ssh_command === want, `ssh command ${results.ssh_command}, want ${want}`);
  results.scp_command = await codeline('scp').innerText();
  results.sftp_command = await codeline('sftp').innerText();
  await page.getByRole('button', { name: 'Copy ssh' }).click();
  await page.getByText('Copied').waitFor();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  expect(clip === want, `clipboard ${clip}`);
  await page.getByLabel('TOTP code to put in the login (optional)').fill('123456');
  const withCode = await sshLine.innerText();
  expect(withCode === `ssh '${cfg.user}?123456#${cfg.names.asset}@127.0.0.1' -p ${cfg.ssh_port}`, `with code: ${withCode}`);
  await page.getByLabel('TOTP code to put in the login (optional)').fill('');

  step = 'grant the asset to the new user';
  await page.getByLabel('User name').fill(cfg.names.user);
  await page.getByLabel('Role').selectOption('viewer');
  await page.getByRole('button', { name: 'Add grant' }).click();
  await page.getByRole('cell', { name: `${cfg.names.user} (user)` }).waitFor();
  await page.waitForLoadState('networkidle');
  await shot(page, 'asset');

  step = 'an API refusal is shown in words';
  await page.getByLabel('User name').fill('no-such-user-xyz');
  await page.getByRole('button', { name: 'Add grant' }).click();
  const grantErr = page.getByRole('alert');
  await grantErr.waitFor();
  results.grant_refusal = (await grantErr.innerText()).trim();
  expect(/no-such-user-xyz/.test(results.grant_refusal), `refusal ${results.grant_refusal}`);

  step = 'the session report and its recording';
  await visit(page, `/sessions?user=${encodeURIComponent(cfg.recorded_user)}&kind=exec&result=ok`, 'Sessions');
  await page.getByRole('cell').getByRole('link').first().click();
  await page.getByRole('heading', { level: 1, name: /^Session of / }).waitFor();
  await page.getByRole('button', { name: 'Play recording' }).click();
  const term = page.locator('.player .ap-term, .player pre').first();
  await term.waitFor();
  await page.waitForFunction((t) => {
    const el = document.querySelector('.player');
    return el && el.innerText.includes(t);
  }, cfg.recorded_text, { timeout: 20000 });
  results.played = true;
  await shot(page, 'recording');

  step = 'the file-transfer record of an scp session';
  await visit(page, `/sessions/${cfg.transfer_session}`, /^Session of /);
  await page.getByRole('button', { name: 'Show file transfers' }).click();
  const xfer = page.getByRole('table', { name: 'File transfers' }).getByRole('row')
    .filter({ hasText: 'upload' }).filter({ hasText: cfg.transfer_name });
  await xfer.waitFor();
  const xferText = await xfer.innerText();
  expect(/upload/.test(xferText) && /4321/.test(xferText), `transfer row ${xferText}`);
  await shot(page, 'transfers');

  step = 'create an API token, shown once';
  await visit(page, '/tokens', 'API tokens');
  await page.getByLabel('Description').fill(cfg.names.token);
  await page.getByRole('button', { name: 'Create token' }).click();
  const tokLine = codeline('Token');
  await tokLine.waitFor();
  const tok = await tokLine.innerText();
  expect(tok.split('.').length === 3, 'the token is a JWT');
  const me = async () => (await fetch(`${cfg.url}/api/v1/me`, { headers: { Authorization: `Bearer ${tok}` } })).status;
  expect((await me()) === 200, 'the new token works');
  await shot(page, 'tokens');
  await page.getByRole('button', { name: 'I have copied it' }).click();
  expect((await codeline('Token').count()) === 0, 'the token is gone from the page');

  step = 'disable the token';
  const row = page.getByRole('row', { name: new RegExp(cfg.names.token) });
  await row.getByRole('button', { name: 'Disable' }).click();
  await row.getByRole('cell', { name: 'disabled' }).waitFor();
  expect((await me()) === 401, 'a disabled token is refused');

  step = 'delete the token';
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.getByRole('button', { name: 'Confirm: delete' }).click();
  await page.getByRole('row', { name: new RegExp(cfg.names.token) }).waitFor({ state: 'detached' });

  step = 'every other page loads';
  for (const [path, heading, name] of [
    ['/sites', 'Sites', 'sites'], ['/groups', 'Groups', 'groups'],
    ['/directories', 'Directories', 'directories'], ['/roles', 'Site roles', 'roles'],
    ['/profiles', 'Access profiles', 'profiles'], ['/sessions', 'Sessions', 'sessions'],
    ['/audit', 'Audit log', 'audit'], ['/settings', 'Settings', 'settings'],
    ['/assets', 'Assets', 'assets'], ['/', 'Dashboard', 'dashboard'],
  ]) {
    await visit(page, path, heading);
    expect((await page.getByRole('alert').count()) === 0,
      `${path} shows an error: ${await page.getByRole('alert').allInnerTexts()}`);
    if (['sessions', 'settings', 'audit', 'assets', 'dashboard'].includes(name)) await shot(page, name);
    if (name === 'settings') results.settings_fingerprint = await page.locator('dd code').first().innerText();
    if (name === 'profiles') {
      // each profile says who has it (GET .../assignments): the recorded
      // user's own profile names them
      await page.getByText(`Assigned to user ${cfg.recorded_user}`, { exact: true }).first().waitFor();
    }
    if (name === 'dashboard') {
      // the test holds an exec session open meanwhile
      await page.getByRole('table', { name: 'Sessions now' })
        .getByRole('cell', { name: cfg.recorded_user, exact: true }).first().waitFor();
      await page.getByRole('table', { name: 'Recent refusals' })
        .getByRole('cell', { name: cfg.recorded_user, exact: true }).first().waitFor();
    }
  }

  step = 'phone size';
  await page.setViewportSize({ width: 390, height: 844 });
  await visit(page, '/', 'Dashboard');
  const toggle = page.getByRole('button', { name: 'Menu' });
  expect(await toggle.isVisible(), 'the menu button shows on a phone');
  expect(!(await page.getByRole('navigation', { name: 'Main' }).isVisible()), 'the menu starts closed');
  await toggle.click();
  await page.getByRole('link', { name: 'Assets' }).waitFor();
  await shot(page, 'phone-menu');
  await page.getByRole('link', { name: 'Assets' }).click();
  await page.getByRole('heading', { level: 1, name: 'Assets' }).waitFor();
  await page.waitForLoadState('networkidle');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await shot(page, 'phone-assets');

  step = 'sign out';
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Portcullis' }).waitFor();

  step = 'the enrolled user signs in with a code of the secret the QR code holds';
  await page.getByLabel('User name').fill(cfg.names.user);
  await page.getByLabel('Password').fill('Web-user-pw-1');
  await page.getByLabel('TOTP code (if enabled)').fill(await freshTotp(results.enrolled_secret));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: `Welcome, ${cfg.names.user}` }).waitFor();
  const nav = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allInnerTexts();
  expect(JSON.stringify(nav) === JSON.stringify(['Dashboard', 'API tokens', 'Settings']),
    `a user without a managing role sees ${nav}`);
  for (const [path, heading] of [['/tokens', 'API tokens'], ['/settings', 'Settings'], ['/', 'Dashboard']]) {
    await visit(page, path, heading);
    expect((await page.getByRole('alert').count()) === 0, `${path} shows an error to a plain user`);
  }
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Portcullis' }).waitFor();

  step = 'console';
  expect(consoleErrors.length === 0, `console errors:\n${consoleErrors.join('\n')}`);

  step = 'the CSP blocks an inline script';
  const probe = await browser.newPage();
  await probe.goto(`${cfg.url}/login`);
  await probe.getByLabel('User name').waitFor();
  await probe.evaluate(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation',
      (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  try {
    await probe.addScriptTag({ content: 'window.__inlineRan = true;' });
  } catch {
    // Playwright may report the blocked script as a failure to add it.
  }
  await probe.waitForFunction(() => window.__violations.length > 0, null, { timeout: 5000 });
  const ran = await probe.evaluate(() => window.__inlineRan === true);
  results.csp_violations = await probe.evaluate(() => window.__violations);
  expect(!ran, 'the inline script ran');
  expect(results.csp_violations.some((v) => v.startsWith('script-src')), `violations ${results.csp_violations}`);
  await probe.close();

  console.log(JSON.stringify(results));
}
