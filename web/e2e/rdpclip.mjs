// The clipboard copies of an RDP recording listed by the web UI's player
// (docs/rdp.md "Virtual channels"), in Debian's Chromium (headless,
// playwright-core); run by tests/e2e/test_rdp_clipboard.py.
//
//   node e2e/rdpclip.mjs CONFIG.json
//
// CONFIG: {url, user, password, session_id}
// An administrator signs in, opens the session's page, presses "Play
// recording" and prints one JSON line: the text of the list of clipboard
// copies. Exits 1 with the failed step on stderr otherwise. No console
// errors.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const CHROMIUM = process.env.PORTCULLIS_CHROMIUM || '/usr/bin/chromium';
const consoleErrors = [];
let step = 'start';

const browser = await chromium.launch({
  executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'], headless: true,
});
let page = null;
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`[${step}] ${m.text()}`); });
  page.on('pageerror', (e) => consoleErrors.push(`[${step}] page error: ${e.message}`));

  step = 'sign in';
  await page.goto(`${cfg.url}/login`);
  await page.getByLabel('User name').fill(cfg.user);
  await page.getByLabel('Password').fill(cfg.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor({ timeout: 20000 });

  step = 'the session page';
  await page.goto(`${cfg.url}/sessions/${cfg.session_id}`);
  await page.getByText('RDP recording', { exact: false }).first().waitFor({ timeout: 20000 });
  await page.getByRole('button', { name: 'Play recording' }).click();

  step = 'the clipboard copies';
  const list = page.getByRole('list', { name: 'Clipboard copies' });
  await list.waitFor({ timeout: 20000 });
  const clips = await list.innerText();
  if (consoleErrors.length) throw new Error(`console errors:\n${consoleErrors.join('\n')}`);
  console.log(JSON.stringify({ clips }));
} catch (e) {
  let body = '';
  if (page) body = (await page.locator('body').innerText().catch(() => '')).slice(0, 1500);
  console.error(`${step}: ${e.message}\npage:\n${body}\n${consoleErrors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
