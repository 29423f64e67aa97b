// An rdp asset's page in the web UI (docs/rdp.md), in Debian's Chromium
// (headless, playwright-core); run by tests/e2e/test_rdp.py.
//
//   node e2e/rdp.mjs CONFIG.json
//
// CONFIG: {url, user, password, asset_id, download (a file path),
//          screenshots (a directory or null)}
// The user signs in, opens the asset's page and downloads the .rdp file
// (saved to CONFIG.download); prints one JSON line with the xfreerdp
// command line and the user name the page shows. Exits 1 with the failed
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
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`[${step}] ${m.text()}`); });
  page.on('pageerror', (e) => consoleErrors.push(`[${step}] page error: ${e.message}`));

  step = 'sign in';
  await page.goto(`${cfg.url}/login`);
  await page.getByLabel('User name').fill(cfg.user);
  await page.getByLabel('Password').fill(cfg.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor({ timeout: 20000 });

  step = 'the asset page';
  await page.goto(`${cfg.url}/assets/${cfg.asset_id}`);
  const link = page.getByRole('link', { name: /^Download .*\.rdp$/ });
  await link.waitFor({ timeout: 20000 });
  results.xfreerdp = (await page.locator('.codeline', { hasText: 'xfreerdp' }).locator('code').innerText()).trim();
  results.user_name = (await page.locator('.codeline', { hasText: 'User name' }).locator('code').innerText()).trim();
  if (cfg.screenshots) {
    mkdirSync(cfg.screenshots, { recursive: true });
    await page.screenshot({ path: join(cfg.screenshots, 'rdp-asset.png') });
  }

  step = 'download the .rdp file';
  const [dl] = await Promise.all([page.waitForEvent('download'), link.click()]);
  results.filename = dl.suggestedFilename();
  await dl.saveAs(cfg.download);
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
