// An RDP session's recording played in the web UI (docs/recordings.md), in
// Debian's Chromium (headless, playwright-core); run by
// tests/e2e/test_rdp_record.py.
//
//   node e2e/rdprec.mjs CONFIG.json
//
// CONFIG: {url, user, password, session_id, x, y, screenshots (a
//          directory or null)}
// An administrator signs in, opens the session's page and presses "Play
// recording"; prints one JSON line: the canvas's size and the colour of
// pixel (x, y) once it is no longer black as it plays, after seeking to
// the end, and after seeking back to the start; the player's time text
// and facts line. Exits 1 with the failed
// step on stderr otherwise. No console errors.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const CHROMIUM = process.env.PORTCULLIS_CHROMIUM || '/usr/bin/chromium';
const results = {};
const consoleErrors = [];
let step = 'start';

const browser = await chromium.launch({
  executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'], headless: true,
});
let page = null;
const CANVAS = 'canvas[aria-label="RDP recording"]';
const pixel = () => page.evaluate(({ sel, x, y }) => {
  const c = document.querySelector(sel);
  const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
  return { width: c.width, height: c.height, rgb: [d[0], d[1], d[2]], drawn: Number(c.dataset.drawn) };
}, { sel: CANVAS, x: cfg.x, y: cfg.y });

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

  step = 'the desktop drawn as it plays';
  await page.waitForFunction(({ sel, x, y }) => {
    const c = document.querySelector(sel);
    if (!c || !Number(c.dataset.drawn)) return false;
    const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
    return d[0] + d[1] + d[2] > 60;
  }, { sel: CANVAS, x: cfg.x, y: cfg.y }, { timeout: 20000 });
  results.playing = await pixel();

  step = 'seek to the end';
  const slider = page.getByLabel('Position');
  const max = await slider.getAttribute('max');
  await slider.fill(max);
  await page.waitForFunction((sel) => {
    const t = document.querySelector('[aria-label="Time"]').textContent.split(' / ');
    const c = document.querySelector(sel);
    return t[0] === t[1] && c;
  }, CANVAS, { timeout: 20000 });
  await page.waitForTimeout(500);
  results.last = await pixel();
  results.time = await page.locator('[aria-label="Time"]').innerText();

  step = 'seek back to the start';
  await slider.fill('0');
  await page.waitForFunction(() => document.querySelector('[aria-label="Time"]').textContent.startsWith('0.0 s /'),
    null, { timeout: 20000 });
  await page.waitForTimeout(500);
  results.start = await pixel();
  await slider.fill(max);
  await page.waitForTimeout(500);
  results.facts = await page.locator('.rdp-player p.muted').innerText();
  if (cfg.screenshots) {
    mkdirSync(cfg.screenshots, { recursive: true });
    await page.screenshot({ path: join(cfg.screenshots, 'rdp-recording.png'), fullPage: true });
  }
  if (consoleErrors.length) throw new Error(`console errors:\n${consoleErrors.join('\n')}`);
  console.log(JSON.stringify(results));
} catch (e) {
  let body = '';
  if (page) body = (await page.locator('body').innerText().catch(() => '')).slice(0, 1500);
  console.error(`${step}: ${e.message}\npage:\n${body}\n${consoleErrors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
