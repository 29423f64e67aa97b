// "Install agent" on the Agents page (docs/agent.md, "Install by pairing"),
// in Debian's Chromium (headless, playwright-core); run by
// tests/e2e/test_pairing.py.
//
//   node e2e/pairing.mjs CONFIG.json
//
// CONFIG: {url, admin_user, admin_password, tags, name, screenshots}
// An administrator opens Agents, presses "Install agent", gives tags and a
// name, creates a pairing code and reads the one-line command the page
// shows. Prints one JSON line {command, status}; exits 1 with the failed
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
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`[${step}] ${m.text()}`); });
  page.on('pageerror', (e) => consoleErrors.push(`[${step}] page error: ${e.message}`));

  step = 'sign in';
  await page.goto(`${cfg.url}/login`);
  await page.getByLabel('User name').fill(cfg.admin_user);
  await page.getByLabel('Password').fill(cfg.admin_password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor({ timeout: 20000 });

  step = 'open Agents';
  await page.getByRole('link', { name: 'Agents', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();

  step = 'create a pairing code';
  await page.getByRole('button', { name: 'Install agent' }).click();
  const form = page.getByRole('form', { name: 'New pairing code' });
  await form.getByLabel('Tags (optional)').fill(cfg.tags.join(', '));
  await form.getByLabel('Agent name (optional)').fill(cfg.name);
  await form.getByRole('button', { name: 'Create pairing code' }).click();
  const region = page.getByRole('region', { name: 'Install agent' });
  const line = region.locator('.codeline code');
  await line.waitFor({ timeout: 20000 });
  results.command = (await line.innerText()).trim();
  results.status = (await region.getByRole('status').innerText()).replace(/\s+/g, ' ').trim();
  await region.getByRole('button', { name: 'Copy install command' }).waitFor();
  if (cfg.screenshots) {
    mkdirSync(cfg.screenshots, { recursive: true });
    await page.screenshot({ path: join(cfg.screenshots, 'install-agent.png') });
  }
  if (consoleErrors.length) throw new Error(`console errors:\n${consoleErrors.join('\n')}`);
  console.log(JSON.stringify(results));
} catch (e) {
  console.error(`${step}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
